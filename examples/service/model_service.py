"""A small model-serving API written once for every cloud: the worked example of docs/testing-kit.md.

FastAPI-style routes on plain async functions (no web framework needed to read or test it). The
service only ever touches ``infra`` — queues, tasks, files, images, Redis and secrets — so the same
code runs on aws, azure, gcp, onprem and local; its tests run on two clouds by changing one fixture
parameter (see test_model_service.py). To serve it, mount `ModelService.handle` in any ASGI
framework, or call the route methods from FastAPI handlers.

Routes::

    POST   /endpoints                  {"name", "image_tag"}      -> 201 {"endpoint_id", "queue_name"}
    GET    /endpoints/{id}                                         -> 200 {"name", "waiting", ...}
    POST   /endpoints/{id}/predict     {"prompt"}                  -> 202 {"task_id"}
    PUT    /endpoints/{id}/weights/{file}  raw bytes               -> 201 {"uri"}
    GET    /endpoints/{id}/weights/{file}                          -> 200 {"url"}   (signed, 10 minutes)
    DELETE /endpoints/{id}                                         -> 204
    GET    /tasks/{task_id}                                        -> 200 {"status", "result"} / 202 pending

Every request carries ``Authorization: Bearer <key>``; the key is the secret ``service-api-key``.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from model_engine_infra import Infra
from model_engine_infra.errors import InfraError
from model_engine_infra.json_types import JSONValue
from model_engine_infra.tasks.base import TaskStatus

PREDICT_TASK = "example.predict"
API_KEY_SECRET = "service-api-key"
MAX_PROMPT_CHARS = 16_000  # a prompt travels inside the broker message; big payloads go through storage
SIGNED_URL_SECONDS = 600
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_FILE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class Response:
    status: int
    body: Mapping[str, JSONValue] = field(default_factory=dict)


Route = Callable[..., Awaitable[Response]]


class ModelService:
    """The API. ``infra`` is whatever `build_infra` (or the testing kit's ``mei_fake_infra``) returned."""

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self._routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("POST", re.compile(r"^/endpoints$"), self.create_endpoint),
            ("GET", re.compile(r"^/endpoints/(?P<endpoint_id>[\w-]+)$"), self.get_endpoint),
            ("POST", re.compile(r"^/endpoints/(?P<endpoint_id>[\w-]+)/predict$"), self.predict),
            ("PUT", re.compile(r"^/endpoints/(?P<endpoint_id>[\w-]+)/weights/(?P<file>[^/]+)$"), self.put_weights),
            ("GET", re.compile(r"^/endpoints/(?P<endpoint_id>[\w-]+)/weights/(?P<file>[^/]+)$"), self.weights_url),
            ("DELETE", re.compile(r"^/endpoints/(?P<endpoint_id>[\w-]+)$"), self.delete_endpoint),
            ("GET", re.compile(r"^/tasks/(?P<task_id>[\w-]+)$"), self.get_task),
        ]

    async def handle(
        self, method: str, path: str, body: object = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Route one request: authorise, match, call; infrastructure errors become 503, not 500."""
        if not self._authorised(headers or {}):
            return Response(401, {"error": "missing or wrong API key"})
        for route_method, pattern, route in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    return await route(body, **match.groupdict())
                except InfraError as err:  # typed, secret-free messages: safe to return
                    return Response(503, {"error": str(err)})
        return Response(404, {"error": f"no route {method} {path}"})

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        expected = self.infra.secrets.get(API_KEY_SECRET)
        given = headers.get("Authorization", "").removeprefix("Bearer ")
        return isinstance(expected, str) and hmac.compare_digest(given.encode(), expected.encode())

    # --- routes -----------------------------------------------------------------------------------
    async def create_endpoint(self, body: object) -> Response:
        name, tag = _field(body, "name"), _field(body, "image_tag")
        if not _NAME.match(name) or not tag:
            return Response(422, {"error": "name (lower-case, up to 31 characters) and image_tag are required"})
        repository = self.infra.config.vllm_repository
        if not self.infra.docker_repository.image_exists(tag, repository):
            image = self.infra.docker_repository.get_image_url(tag, repository)
            return Response(409, {"error": f"{image} is not in the registry; mirror it first"})
        endpoint_id = f"{name}-{uuid.uuid4().hex[:8]}"
        info = await self.infra.queue_delegate.create_queue_if_not_exists(
            endpoint_id, name, "model-service", {"image_tag": tag}, queue_message_timeout_seconds=300
        )
        record = {"name": name, "image_tag": tag, "queue_name": info.queue_name}
        await self.infra.redis.async_client().set(_key(endpoint_id), json.dumps(record))
        return Response(201, {"endpoint_id": endpoint_id, "queue_name": info.queue_name})

    async def get_endpoint(self, body: object, endpoint_id: str) -> Response:
        record = await self._endpoint(endpoint_id)
        if record is None:
            return Response(404, {"error": f"no endpoint {endpoint_id}"})
        attributes = await self.infra.queue_delegate.get_queue_attributes(endpoint_id)
        return Response(200, {**record, "waiting": attributes.approximate_message_count})

    async def predict(self, body: object, endpoint_id: str) -> Response:
        record = await self._endpoint(endpoint_id)
        if record is None:
            return Response(404, {"error": f"no endpoint {endpoint_id}"})
        prompt = _field(body, "prompt")
        if not prompt or len(prompt) > MAX_PROMPT_CHARS:
            return Response(422, {"error": f"prompt must be 1 to {MAX_PROMPT_CHARS} characters"})
        sent = self.infra.task_queue.send_task(PREDICT_TASK, record["queue_name"], kwargs={"prompt": prompt})
        return Response(202, {"task_id": sent.task_id})

    async def get_task(self, body: object, task_id: str) -> Response:
        state = self.infra.task_queue.get_task(task_id)
        if state.status is TaskStatus.SUCCESS:
            return Response(200, {"status": "done", "result": state.result})
        if state.status is TaskStatus.FAILURE:
            return Response(200, {"status": "failed", "error": state.result})
        return Response(202, {"status": state.status.value.lower()})

    async def put_weights(self, body: object, endpoint_id: str, file: str) -> Response:
        if await self._endpoint(endpoint_id) is None:
            return Response(404, {"error": f"no endpoint {endpoint_id}"})
        if not _FILE.match(file) or not isinstance(body, bytes):
            return Response(422, {"error": "a plain file name and a byte body are required"})
        uri = self._weights_uri(endpoint_id, file)
        with self.infra.filesystem.open(uri, "wb") as f:
            f.write(body)
        return Response(201, {"uri": uri})

    async def weights_url(self, body: object, endpoint_id: str, file: str) -> Response:
        uri = self._weights_uri(endpoint_id, file)
        if not _FILE.match(file) or not self.infra.filesystem.exists(uri):
            return Response(404, {"error": f"no weights file {file} for {endpoint_id}"})
        return Response(200, {"url": self.infra.filesystem.generate_signed_url(uri, expiration=SIGNED_URL_SECONDS)})

    async def delete_endpoint(self, body: object, endpoint_id: str) -> Response:
        await self.infra.queue_delegate.delete_queue(endpoint_id)
        await self.infra.redis.async_client().delete(_key(endpoint_id))
        return Response(204)

    # --- helpers ----------------------------------------------------------------------------------
    async def _endpoint(self, endpoint_id: str) -> dict[str, str] | None:
        raw = await self.infra.redis.async_client().get(_key(endpoint_id))
        if not raw:
            return None
        record: object = json.loads(raw)
        return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else None

    def _weights_uri(self, endpoint_id: str, file: str) -> str:
        return f"{self.infra.config.hf_user_fine_tuned_weights_prefix.rstrip('/')}/{endpoint_id}/{file}"


def _field(body: object, name: str) -> str:
    """A string field of a JSON object body, or "" when the body or the field is something else."""
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def _key(endpoint_id: str) -> str:
    return f"model-service:endpoint:{endpoint_id}"
