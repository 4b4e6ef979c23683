"""The SQS broker: per-endpoint SQS queues and Celery on kombu's SQS transport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import BrokerPermissionError, BrokerUnavailableError, ConfigError, InfraError, QueueError
from ..rules import Rule, Severity, error_rule
from .base import KIB, BrokerSettings, BrokerType, BrokerUnit, RedisBroker, SendBounds, TaskVisibility, queue_missing
from .templates import SAMPLE_VALUES, render_template

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..tasks.presence import Presence

SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
# A send's SQS calls (ListQueues, SendMessage): botocore's connect and read timeouts and attempts
# (standard mode: connection errors, timeouts, throttling and 5xx are retried, with back-off
# pauses of at most 1 s and 2 s). kombu does not retry on top, so one send waits at most
# SEND_SDK_ATTEMPTS x (connect + read) + 3 s. Workers keep botocore's defaults (a long poll
# waits 20 s for messages).
SEND_CONNECT_TIMEOUT = 2.0
SEND_READ_TIMEOUT = 5.0
SEND_SDK_ATTEMPTS = 3
# SQS's codes for a missing queue (kombu's SQS transport lets botocore's ClientError through).
QUEUE_MISSING_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue")


@error_rule("sqs-templates", "sqs_queue_policy_template", "sqs_queue_tag_template")
def _templates(config: InfraConfig) -> None:
    """Render both templates with sample values: a broken one fails at start-up, not at the first endpoint."""
    from ..config.keys import fail, key_path

    for name in ("sqs_queue_policy_template", "sqs_queue_tag_template"):
        template = getattr(config, name)
        if template is not None:
            document = render_template(template, SAMPLE_VALUES, key=key_path(config, name))
            if not isinstance(document, dict):
                raise fail(config, name, "must be a JSON object", "write the template as a JSON object {...}")
            if name == "sqs_queue_tag_template" and not all(isinstance(v, str) for v in document.values()):
                raise fail(config, name, "tag values must be strings", 'write tags as {"Key": "value"}')


RULES: tuple[Rule, ...] = (_templates,)


# Codes SQS (or STS / KMS behind it) answers when the identity may not do what was asked.
DENIED_CODES = (
    "AccessDenied",
    "AccessDeniedException",
    "AWS.SimpleQueueService.AccessDenied",
    "KMS.AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSecurity",
)
NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError")
# IAM actions send_task needs, by the call that was refused (kombu looks a queue up with ListQueues).
SEND_ACTIONS = {"ListQueues": "sqs:ListQueues", "GetQueueUrl": "sqs:GetQueueUrl", "SendMessage": "sqs:SendMessage"}


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and len(seen) < 10 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _denied(err: BaseException, code: str, task_name: str, queue_name: str) -> InfraError:
    """`BrokerPermissionError` naming the IAM action the refused call needs, or the missing credentials."""
    if not code:
        return BrokerPermissionError(
            f"could not send task {task_name!r} to queue {queue_name!r}: no AWS credentials were found "
            f"({type(err).__name__}); give the pod an IAM role (IRSA) or set AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY. The task was not sent"
        )
    operation = str(getattr(err, "operation_name", "") or "")
    action = SEND_ACTIONS.get(operation, f"sqs:{operation}" if operation else "the SQS action")
    if code in (
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
    ):
        fix = "the AWS credentials are not valid (expired or wrong): check the pod's IAM role (IRSA) or keys"
    elif code == "KMS.AccessDeniedException":
        fix = "the queue is encrypted with a KMS key: allow kms:GenerateDataKey and kms:Decrypt on it"
    else:
        fix = f"allow {action} for this identity (send_task needs sqs:ListQueues and sqs:SendMessage)"
    return BrokerPermissionError(
        f"could not send task {task_name!r} to queue {queue_name!r}: SQS refused {operation or 'the call'} "
        f"({code}); {fix}. The task was not sent"
    )


def _status(err: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError``, else 0."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _client_error_code(err: BaseException) -> str:
    """The error code of a botocore ``ClientError``, else ''."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", "") or "")


def send_bounds() -> SendBounds:
    """One kombu attempt per send; botocore retries it (``SEND_SDK_ATTEMPTS``) with short timeouts."""
    backoff = sum(2.0**i for i in range(SEND_SDK_ATTEMPTS - 1))  # standard mode: at most 1 s, 2 s, ...
    return SendBounds(
        attempts=1,
        backoff_seconds=0.0,
        attempt_seconds=SEND_SDK_ATTEMPTS * (SEND_CONNECT_TIMEOUT + SEND_READ_TIMEOUT) + backoff,
        silent_attempt_seconds=SEND_SDK_ATTEMPTS * SEND_READ_TIMEOUT + backoff,
        producer_options={
            "client-config": {
                "connect_timeout": SEND_CONNECT_TIMEOUT,
                "read_timeout": SEND_READ_TIMEOUT,
                "retries": {"mode": "standard", "total_max_attempts": SEND_SDK_ATTEMPTS},
            }
        },
    )


class SQSBrokerUnit(BrokerUnit):
    name = "sqs"
    label = "SQS"
    extras = ("aws",)
    chart_name = "sqs"
    chart_hint = "sqs"
    max_message_bytes = 256 * KIB
    max_visibility_seconds = SQS_MAX_VISIBILITY_SECONDS
    counts_in_flight = True
    per_queue_visibility = True
    delegate_target = "model_engine_infra.queues.sqs:build_delegate"
    keys = (
        "default_region",
        "sqs_profile",
        "sqs_endpoint_url",
        "sqs_queue_policy_template",
        "sqs_queue_tag_template",
        "celery_broker_pool_limit",
    )
    replaced_by_redis = (
        Severity.INFO,
        "the Redis broker on {cloud} is the legacy path (no dead-letter queue, visibility by key expiry); "
        "sqs is the supported broker",
    )
    rules = RULES

    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        if visibility.seconds > SQS_MAX_VISIBILITY_SECONDS:
            raise ConfigError(
                f"SQS allows a visibility timeout of at most 12 hours, {visibility.value} asks for "
                f"{visibility.seconds // 3600} hours",
                key="task_visibility",
                value=visibility.value,
                fix="use VISIBILITY_1H or VISIBILITY_10M on SQS",
            )
        endpoint_url = endpoint_url or config.sqs_endpoint_url
        url = "sqs://"
        options: dict[str, Any] = {
            "region": config.default_region,
            "visibility_timeout": visibility.seconds,
            "wait_time_seconds": 20,
        }
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "the SQS endpoint must be an http(s) URL",
                    key="sqs_endpoint_url",
                    value=endpoint_url,
                    fix="write it like http://127.0.0.1:5000",
                )
            url = f"sqs://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            options["is_secure"] = parts.scheme == "https"
        return BrokerSettings(
            broker_type,
            url,
            None,
            options,
            {},
            self.max_message_bytes,
            "base64",
            envelope_base64=True,
            bounds=send_bounds(),
        )

    def publish_error(self, err: BaseException, task_name: str, queue_name: str) -> InfraError | None:
        for seen in _chain(err):  # kombu wraps botocore's errors in its OperationalError
            code = _client_error_code(seen)
            if code in QUEUE_MISSING_CODES:
                return queue_missing(self.name, task_name, queue_name)
            status = _status(seen)
            if code in DENIED_CODES or status in (401, 403) or type(seen).__name__ in NO_CREDENTIALS:
                return _denied(seen, code, task_name, queue_name)
            if code:  # any other answer from SQS, after botocore's retries (throttling and 5xx included)
                transient = status >= 500 or status == 429 or "Throttl" in code or code == "RequestThrottled"
                kind = BrokerUnavailableError if transient else QueueError
                return kind(
                    f"could not send task {task_name!r} to queue {queue_name!r}: SQS answered {code} to "
                    f"{getattr(seen, 'operation_name', 'the request')}"
                    + ("; retry later" if transient else "")
                    + ". The task was not sent"
                )
        return None

    def check_queue_name(self, name: str) -> str:
        from ..queues.names import sqs_queue_name

        return sqs_queue_name(name)

    def queue_presence(self) -> Presence:
        from ..tasks import presence

        return presence.SQS


BROKER = SQSBrokerUnit()
