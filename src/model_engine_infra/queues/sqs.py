"""Amazon SQS endpoint queues: one boto3 client, called from a pool of threads of its own.

boto3 rather than aiobotocore: in-process moto (the fast unit tests) intercepts boto3 but not
aiobotocore's async HTTP. The calls run on the delegate's own thread pool, sized like the client's
connection pool (`DEFAULT_CONCURRENCY`), not on asyncio's default executor (a handful of threads
shared with everything else): measured against a 32-way aiobotocore client on the same server, the
pool reads 1,000 queues' attributes within 1.2x (docs/performance.md). botocore clients are
thread-safe, so the one client is shared by every call.

The hot path is one call per endpoint: queue URLs never change for a name, so they are cached
(a bulk read fills the cache with one ``ListQueues`` page per 1,000 queues), and the tags (where
``endpoint_created_by`` lives) are read only when asked (``include_tags=True``).

Policy and tags come from ``sqs_queue_policy_template`` / ``sqs_queue_tag_template``, rendered by
`render_template` (values JSON-escaped). ``VisibilityTimeout`` is the endpoint's message timeout
(SQS allows 0 .. 43200 s; longer is capped). Creating a queue that exists brings it in line with
the request: a different visibility timeout or policy is set, tags whose values differ are
re-tagged (one read of attributes and tags, writes only for what differs). Region is
``default_region`` — the Celery SQS broker uses the same key, so producer, worker and delegate
agree on where the queue lives.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config

from ..brokers.templates import PLACEHOLDERS, placeholders_in, render_template
from ..errors import (
    BrokerPermissionError,
    BrokerUnavailableError,
    ConfigError,
    EndpointLabelsError,
    InvalidQueueSettingError,
    QueueError,
    QueueNotFoundError,
)
from .base import QUEUE_NAME_PREFIX, QueueAttributes, QueueEndpointResourceDelegate, QueueInfo
from .names import sqs_queue_name

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS",
    "MAX_VISIBILITY_TIMEOUT_SECONDS",
    "SQSQueueEndpointResourceDelegate",
    "build_delegate",
]

#: SQS's maximum visibility timeout, and the default when an endpoint gives no timeout.
MAX_VISIBILITY_TIMEOUT_SECONDS = 43200
DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS = MAX_VISIBILITY_TIMEOUT_SECONDS
#: Calls in flight at once: the delegate's threads and the client's connection pool (botocore's default is 10).
DEFAULT_CONCURRENCY = 32
DEFAULT_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=DEFAULT_CONCURRENCY,
)
# A bulk read with more uncached URLs than this lists the queues (1,000 a page) instead of asking one by one.
_LIST_QUEUES_ABOVE = 8
_LIST_PAGE = 1000
_NOT_FOUND = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
_EXISTS = {"QueueAlreadyExists", "QueueNameExists"}
_DELETED_RECENTLY = {"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}
_UNAVAILABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.TokenRetrievalError,
)
_T = TypeVar("_T")


def _code(err: botocore.exceptions.ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _sentinel_tag_keys(tag_template: str | None) -> dict[str, str]:
    """Which tag key holds each placeholder (``endpoint_created_by`` -> the tag named for it).

    Renders the template with marker values and looks for the keys whose value is exactly a marker,
    so the creator can be read back from tags whatever the deployment named the tag.
    """
    if not tag_template:
        return {}
    markers = {name: f"\x00{name}\x00" for name in PLACEHOLDERS}
    try:
        rendered = render_template(tag_template, markers, key="sqs_queue_tag_template")
    except ConfigError:
        return {}
    if not isinstance(rendered, dict):
        return {}
    return {placeholder: key for key, value in rendered.items() for placeholder, m in markers.items() if value == m}


def _same_attribute(name: str, current: str | None, wanted: str) -> bool:
    if name == "Policy" and current is not None:
        try:
            return bool(json.loads(current) == json.loads(wanted))  # SQS may reformat the document
        except json.JSONDecodeError:
            return False
    return current == wanted


def _bring_in_line(client: Any, url: str, attributes: Mapping[str, str], tags: Mapping[str, str]) -> None:
    """Make an existing queue's attributes and tags what create was asked for; writes only what differs.

    Tags the template does not name are left alone (someone else put them there).
    """
    current = client.get_queue_attributes(QueueUrl=url, AttributeNames=list(attributes))["Attributes"]
    changed = {k: v for k, v in attributes.items() if not _same_attribute(k, current.get(k), v)}
    if changed:
        client.set_queue_attributes(QueueUrl=url, Attributes=changed)
    if tags:
        present = client.list_queue_tags(QueueUrl=url).get("Tags", {})
        differing = {k: v for k, v in tags.items() if present.get(k) != v}
        if differing:
            client.tag_queue(QueueUrl=url, Tags=differing)


class SQSQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues in SQS.

    ``endpoint_url`` points the client elsewhere (moto, LocalStack); ``client`` injects a ready
    boto3 SQS client; otherwise one is built on first use from ``profile`` and ``region``.
    ``concurrency`` is how many calls run at once (threads; give an injected client a connection
    pool at least as large).
    """

    broker_name: ClassVar[str] = "SQS"
    max_queue_name_length: ClassVar[int] = 80

    def check_queue_name(self, name: str) -> str:
        return sqs_queue_name(name)

    def __init__(
        self,
        *,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        policy_template: str | None = None,
        tag_template: str | None = None,
        client: Any | None = None,
        client_config: Config | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        self.policy_template = policy_template
        self.tag_template = tag_template
        self._client = client
        pool = Config(max_pool_connections=concurrency)
        self._client_config = pool.merge(client_config) if client_config else DEFAULT_CLIENT_CONFIG.merge(pool)
        self._concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._urls: dict[str, str] = {}  # queue name -> URL; a name's URL never changes
        self._lock = threading.Lock()
        self._tag_keys = _sentinel_tag_keys(tag_template)

    def __repr__(self) -> str:
        return f"SQSQueueEndpointResourceDelegate(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._session().client(
                    "sqs", region_name=self.region, endpoint_url=self.endpoint_url, config=self._client_config
                )
            return self._client

    def _session(self) -> boto3.Session:
        profile = self.profile
        if profile and profile not in boto3.Session().available_profiles:
            if profile != "default":
                raise ConfigError(
                    "names an AWS profile that is not configured",
                    key="sqs_profile",
                    value=profile,
                    fix="add the profile to ~/.aws/config or unset SQS_PROFILE to use the default credential chain",
                )
            profile = None  # "default" without a config file: the credential chain (env, IRSA) decides
        return boto3.Session(profile_name=profile, region_name=self.region)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix="sqs-delegate")
            return self._executor

    async def _run(self, action: str, queue_name: str, call: Callable[[Any], _T]) -> _T:
        """Run ``call(client)`` in a thread; transport failures become `BrokerUnavailableError`."""

        def invoke() -> _T:
            return call(self._sqs())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool(), invoke)
        except _UNAVAILABLE as err:
            raise BrokerUnavailableError(
                f"cannot reach SQS ({self.endpoint_url or self.region}) to {action} {queue_name!r}: "
                f"{type(err).__name__}; check the network, region and AWS credentials"
            ) from err
        except botocore.exceptions.ClientError as err:
            code = _code(err)
            if code in _NOT_FOUND or code in _EXISTS:
                raise
            if code in _DELETED_RECENTLY:
                raise QueueError(
                    f"SQS refuses to recreate {queue_name!r} within 60 s of deleting it; retry in a minute"
                ) from err
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 403 or "AccessDenied" in code:
                operation = err.operation_name or action
                raise BrokerPermissionError(
                    f"SQS refused to {action} {queue_name!r} ({code or status}); allow sqs:{operation} "
                    "for this identity (the IAM role the pod runs as)"
                ) from err
            if status >= 500 or status in (0, 429) or "Throttl" in code:
                raise BrokerUnavailableError(
                    f"SQS could not {action} {queue_name!r} ({code or status}); " + "retry later"
                ) from err
            raise QueueError(f"SQS rejected {action} {queue_name!r}: {code}") from err
        except botocore.exceptions.BotoCoreError as err:
            raise BrokerUnavailableError(f"SQS client failed to {action} {queue_name!r}: {type(err).__name__}") from err

    def _check_no_team_placeholder(self, endpoint_id: str) -> None:
        """``${team}`` is filled from the endpoint's ``team`` label; without one the queue cannot be tagged."""
        for key, template in (
            ("sqs_queue_policy_template", self.policy_template),
            ("sqs_queue_tag_template", self.tag_template),
        ):
            if template and "team" in placeholders_in(template):
                raise EndpointLabelsError(
                    f"endpoint {endpoint_id!r} has no 'team' label, and {key} uses ${{team}}. Fix: give the "
                    "endpoint a team label (llm-engine always sets one), or remove ${team} from the template"
                )

    def _queue_url(self, client: Any, name: str) -> str | None:
        cached = self._urls.get(name)
        if cached is not None:
            return cached
        try:
            url = str(client.get_queue_url(QueueName=name)["QueueUrl"])
        except botocore.exceptions.ClientError as err:
            if _code(err) in _NOT_FOUND:
                return None
            raise
        self._urls[name] = url
        return url

    def _list_queue_urls(self, client: Any, names: set[str]) -> None:
        """Fill the URL cache for ``names`` from ``ListQueues`` (by the endpoint prefix, 1,000 a page)."""
        kwargs: dict[str, Any] = {"QueueNamePrefix": QUEUE_NAME_PREFIX, "MaxResults": _LIST_PAGE}
        while True:
            page = client.list_queues(**kwargs)
            for url in page.get("QueueUrls", []):
                name = str(url).rsplit("/", 1)[-1]
                if name in names:
                    self._urls[name] = str(url)
            token = page.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token

    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, str],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo:
        name = self.queue_name(endpoint_id)
        timeout = (
            DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS
            if queue_message_timeout_seconds is None
            else (queue_message_timeout_seconds)
        )
        if timeout < 0:
            raise InvalidQueueSettingError(f"queue_message_timeout_seconds must not be negative, not {timeout}")
        values = {
            "queue_name": name,
            "endpoint_id": endpoint_id,
            "endpoint_name": endpoint_name,
            "endpoint_created_by": endpoint_created_by,
        }
        if "team" in endpoint_labels:
            values["team"] = str(endpoint_labels["team"])
        else:
            self._check_no_team_placeholder(endpoint_id)
        attributes = {"VisibilityTimeout": str(min(timeout, MAX_VISIBILITY_TIMEOUT_SECONDS))}
        if self.policy_template:
            policy = render_template(self.policy_template, values, key="sqs_queue_policy_template")
            attributes["Policy"] = json.dumps(policy)
        tags: dict[str, str] = {}
        if self.tag_template:
            rendered = render_template(self.tag_template, values, key="sqs_queue_tag_template")
            if not isinstance(rendered, dict):
                raise ConfigError(
                    "must be a JSON object of tag names to values",
                    key="sqs_queue_tag_template",
                    value=self.tag_template.strip()[:80],
                )
            tags = {str(k): str(v) for k, v in rendered.items()}

        def create(client: Any) -> str:
            existing = self._queue_url(client, name)
            if existing is not None:
                try:
                    _bring_in_line(client, existing, attributes, tags)
                except botocore.exceptions.ClientError as err:
                    if _code(err) not in _NOT_FOUND:
                        raise
                    self._urls.pop(name, None)  # deleted meanwhile (a stale cached URL): create it below
                else:
                    return existing
            kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
            if tags:
                kwargs["tags"] = tags
            try:
                created = str(client.create_queue(**kwargs)["QueueUrl"])
            except botocore.exceptions.ClientError as err:
                if _code(err) in _EXISTS:  # created concurrently with other settings: ours win
                    url = self._queue_url(client, name)
                    if url is not None:
                        _bring_in_line(client, url, attributes, tags)
                        return url
                raise
            self._urls[name] = created
            return created

        url = await self._run("create", name, create)
        return QueueInfo(queue_name=name, queue_url=url)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)

        def delete(client: Any) -> None:
            url = self._queue_url(client, name)
            if url is None:
                return
            try:
                client.delete_queue(QueueUrl=url)
            except botocore.exceptions.ClientError as err:
                if _code(err) not in _NOT_FOUND:
                    raise
            finally:
                self._urls.pop(name, None)

        await self._run("delete", name, delete)

    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        name = self.queue_name(endpoint_id)
        found = await self._read_one(name, include_tags)
        if found is None:
            raise QueueNotFoundError(f"SQS queue {name!r} does not exist in {self.endpoint_url or self.region}")
        return found

    async def get_queue_attributes_many(
        self, endpoint_ids: Iterable[str], *, include_tags: bool = False
    ) -> dict[str, QueueAttributes | None]:
        """One ``GetQueueAttributes`` per queue (SQS has no batch read), `concurrency` at a time.

        URLs not cached yet come from ``ListQueues`` when there are many of them, so a cold batch
        costs one more call per 1,000 queues rather than one per queue.
        """
        names = {endpoint_id: self.queue_name(endpoint_id) for endpoint_id in dict.fromkeys(endpoint_ids)}
        uncached = {name for name in names.values() if name not in self._urls}
        if len(uncached) > _LIST_QUEUES_ABOVE:
            await self._run("list", QUEUE_NAME_PREFIX + "*", lambda client: self._list_queue_urls(client, uncached))
        answers = await asyncio.gather(*(self._read_one(name, include_tags) for name in names.values()))
        return dict(zip(names, answers, strict=True))

    async def _read_one(self, name: str, include_tags: bool) -> QueueAttributes | None:
        return await self._run("read", name, lambda client: self._read(client, name, include_tags))

    def _read(self, client: Any, name: str, include_tags: bool) -> QueueAttributes | None:
        """In a pool thread: the queue's attributes (and tags if asked), None when it does not exist."""
        url = self._queue_url(client, name)
        if url is None:
            return None
        try:
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            tags = client.list_queue_tags(QueueUrl=url).get("Tags", {}) if include_tags else None
        except botocore.exceptions.ClientError as err:
            if _code(err) in _NOT_FOUND:
                self._urls.pop(name, None)
                return None
            raise
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        creator_key = self._tag_keys.get("endpoint_created_by")
        raw: dict[str, Any] = {**attributes, "QueueUrl": url}
        if tags is not None:
            raw["Tags"] = dict(tags)
        return QueueAttributes(
            name=name,
            approximate_message_count=visible + in_flight,
            approximate_in_flight_count=in_flight,
            raw=raw,
            endpoint_labels=None,
            endpoint_created_by=tags.get(creator_key) if tags and creator_key else None,
        )

    async def close(self) -> None:
        client, executor = self._client, self._executor
        if client is not None:
            await asyncio.to_thread(client.close)
        if executor is not None:
            self._executor = None
            executor.shutdown(wait=False)


def build_delegate(config: InfraConfig, infra: Infra) -> SQSQueueEndpointResourceDelegate:
    """The SQS broker unit (`brokers.sqs`) has checked the templates before this runs."""
    return SQSQueueEndpointResourceDelegate(
        region=config.default_region,
        profile=config.sqs_profile,
        endpoint_url=config.sqs_endpoint_url,
        policy_template=config.sqs_queue_policy_template,
        tag_template=config.sqs_queue_tag_template,
    )
