"""A send the broker refuses for the identity's rights is `BrokerPermissionError`, naming what to grant.

The queue-existence check runs before the first push to a queue (SQS: kombu's ``ListQueues`` lookup;
Service Bus: the admin client's ``get_queue``); a refusal there, or of the push itself, reached the
caller as botocore's / the SDK's raw error, or as "broker unreachable" after retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from kombu.exceptions import OperationalError

from model_engine_infra.brokers.redis import BROKER as REDIS
from model_engine_infra.brokers.servicebus import BROKER as SERVICEBUS
from model_engine_infra.brokers.sqs import BROKER as SQS
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerPermissionError, BrokerUnavailableError, QueueError
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus


def client_error(code: str, operation: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


# --- SQS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (client_error("AccessDenied", "ListQueues", 403), "sqs:ListQueues"),
        (client_error("AccessDenied", "SendMessage", 403), "sqs:SendMessage"),
        (client_error("403", "ListQueues", 403), "sqs:ListQueues"),  # moto's XML answer to the JSON protocol
        (client_error("KMS.AccessDeniedException", "SendMessage"), "kms:GenerateDataKey"),
        (client_error("ExpiredToken", "ListQueues", 403), "not valid"),
        (NoCredentialsError(), "AWS_ACCESS_KEY_ID"),
    ],
)
def test_sqs_refusals_name_what_to_grant(error: BaseException, says: str) -> None:
    wrapped = OperationalError(str(error))
    wrapped.__cause__ = error  # how kombu hands it on
    for raised in (error, wrapped):
        mapped = SQS.publish_error(raised, "tasks.predict", "q1")
        assert isinstance(mapped, BrokerPermissionError)
        assert isinstance(mapped, PermissionError)
        assert says in str(mapped)
        assert "q1" in str(mapped)


def test_other_sqs_answers_are_typed_too() -> None:
    throttled = SQS.publish_error(client_error("ThrottlingException", "SendMessage", 400), "t", "q1")
    assert isinstance(throttled, BrokerUnavailableError)
    server = SQS.publish_error(client_error("InternalError", "SendMessage", 500), "t", "q1")
    assert isinstance(server, BrokerUnavailableError)
    refused = SQS.publish_error(client_error("InvalidParameterValue", "SendMessage", 400), "t", "q1")
    assert isinstance(refused, QueueError)
    assert not isinstance(refused, BrokerUnavailableError)
    assert SQS.publish_error(ValueError("ours"), "t", "q1") is None


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.mark.usefixtures("aws_env")
def test_sqs_identity_without_list_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto enforcing IAM: the identity may send but not look queues up, which send_task does first."""
    import boto3
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    @set_initial_no_auth_action_count(3)  # the three IAM calls below
    @mock_aws
    def run() -> None:
        iam = boto3.client("iam")
        iam.create_user(UserName="sender")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}],
        }
        iam.put_user_policy(UserName="sender", PolicyName="send-only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="sender")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        gateway = CeleryTaskQueueGateway.from_config(
            InfraConfig(cloud_provider="aws", celery_backend_protocol="redis", redis_host="127.0.0.1")
        )
        with pytest.raises(BrokerPermissionError, match="sqs:ListQueues") as err:
            gateway.send_task("tasks.predict", "q1")
        assert "not sent" in str(err.value)
        assert key["SecretAccessKey"] not in str(err.value)

    run()


# --- Service Bus -----------------------------------------------------------------------------------

SB_CONFIG = InfraConfig(
    cloud_provider="azure", servicebus_namespace="perm-ns", celery_backend_protocol="redis", redis_host="127.0.0.1"
)


@pytest.fixture
def namespace() -> Iterator[FakeServiceBusNamespace]:
    ns = FakeServiceBusNamespace("perm-ns")
    with patch_kombu_servicebus(ns):
        yield ns


@pytest.mark.parametrize("status", [401, 403])
def test_servicebus_queue_lookup_refused(
    namespace: FakeServiceBusNamespace, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from kombu.transport import azureservicebus

    admin = azureservicebus.ServiceBusAdministrationClient  # the fake patch_kombu_servicebus installed

    def refuse(self: Any, queue_name: str, **kwargs: Any) -> Any:
        error = ClientAuthenticationError("Unauthorized") if status == 401 else HttpResponseError("Forbidden")
        error.status_code = status
        raise error

    monkeypatch.setattr(admin, "get_queue", refuse)
    gateway = CeleryTaskQueueGateway.from_config(SB_CONFIG)
    with pytest.raises(BrokerPermissionError, match="Azure Service Bus Data Owner"):
        gateway.send_task("tasks.predict", "q1")


def test_servicebus_send_refused(namespace: FakeServiceBusNamespace) -> None:
    from azure.servicebus.exceptions import ServiceBusAuthorizationError

    gateway = CeleryTaskQueueGateway.from_config(SB_CONFIG)
    declare_queue(gateway, "q-auth")
    namespace.fail_next_send_attempts(100, ServiceBusAuthorizationError)
    with pytest.raises(BrokerPermissionError, match="Azure Service Bus Data Sender"):
        gateway.send_task("tasks.predict", "q-auth")
    assert SERVICEBUS.publish_error(ValueError("ours"), "t", "q") is None


# --- Redis -----------------------------------------------------------------------------------------


def test_redis_acl_and_credential_refusals() -> None:
    import redis

    noperm = redis.exceptions.NoPermissionError("NOPERM User sender has no permissions to run the 'eval' command")
    mapped = REDIS.publish_error(noperm, "t", "q1")
    assert isinstance(mapped, BrokerPermissionError)
    assert "+eval" in str(mapped)
    wrongpass = redis.exceptions.AuthenticationError("invalid username-password pair or user is disabled.")
    wrapped = OperationalError(str(wrongpass))
    wrapped.__cause__ = wrongpass
    assert isinstance(REDIS.publish_error(wrapped, "t", "q1"), BrokerPermissionError)


# --- the queue delegates say the same ------------------------------------------------------------


async def test_sqs_delegate_refusal_names_the_action(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate

    class Refusing:
        def get_queue_url(self, **kwargs: Any) -> Any:
            raise client_error("AccessDenied", "GetQueueUrl", 403)

    delegate = SQSQueueEndpointResourceDelegate(region="us-east-1")
    monkeypatch.setattr(delegate, "_sqs", Refusing)
    with pytest.raises(BrokerPermissionError, match="sqs:GetQueueUrl"):
        await delegate.get_queue_attributes("e1")
