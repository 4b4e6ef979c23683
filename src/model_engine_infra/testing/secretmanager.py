"""A fake ``google.cloud.secretmanager.SecretManagerServiceClient``: secrets in memory, the SDK's real types.

There is no Secret Manager emulator. This fake answers ``access_secret_version`` like the service
(``AccessSecretVersionResponse`` with the payload's CRC32C; ``versions/latest`` or a version
number; ``NotFound`` for a missing secret or version, ``FailedPrecondition`` for a disabled one)
and takes secrets through the real API's ``create_secret`` / ``add_secret_version`` shapes, or the
shortcut `FakeSecretManagerClient.set_secret`. Faults: `fail_not_found`, `fail_permission_denied`,
`fail_deadline_exceeded` (the exceptions of ``google.api_core.exceptions``).

Not modelled: IAM, replication, regional endpoints, version aliases and etags, expiry and
rotation schedules, CMEK, the other management calls (list, update, destroy), quotas.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc

__all__ = ["FakeSecretManagerClient"]


def _name_of(request: Any, name: str | None) -> str:
    if request is not None and name is not None:
        raise ValueError("If the `request` argument is set, then none of the individual field arguments should be set.")
    if request is None:
        return str(name)
    return str(request["name"] if isinstance(request, Mapping) else request.name)


class FakeSecretManagerClient:
    """Secrets of every project in memory; ``fail`` is raised by every access while set."""

    def __init__(self, secrets: Mapping[str, str] | None = None, *, project: str = "fake-project") -> None:
        self.project = project
        self._versions: dict[str, list[tuple[bytes, bool]]] = {}  # secret path -> [(data, enabled)]
        self._lock = threading.Lock()
        self.calls = 0
        self.fail: BaseException | None = None
        for secret, value in (secrets or {}).items():
            self.set_secret(secret, value)

    def __repr__(self) -> str:
        return f"FakeSecretManagerClient({len(self._versions)} secrets)"

    # --- faults ------------------------------------------------------------------------------------
    def fail_not_found(self) -> None:
        self.fail = gexc.NotFound("Secret [projects/fake/secrets/x] not found or has no versions.")

    def fail_permission_denied(self) -> None:
        self.fail = gexc.PermissionDenied("Permission 'secretmanager.versions.access' denied for resource")

    def fail_deadline_exceeded(self) -> None:
        self.fail = gexc.DeadlineExceeded("Deadline Exceeded")

    # --- writing (the real API's shapes, and a shortcut) --------------------------------------------
    def create_secret(self, request: Any = None, **kwargs: Any) -> Any:
        from google.cloud import secretmanager

        fields = dict(request) if isinstance(request, Mapping) else kwargs
        path = f"{fields['parent']}/secrets/{fields['secret_id']}"
        with self._lock:
            if path in self._versions:
                raise gexc.AlreadyExists(f"Secret [{path}] already exists.")
            self._versions[path] = []
        return secretmanager.Secret(name=path)

    def add_secret_version(self, request: Any = None, **kwargs: Any) -> Any:
        from google.cloud import secretmanager

        fields = dict(request) if isinstance(request, Mapping) else kwargs
        parent, payload = fields["parent"], fields["payload"]
        data = payload["data"] if isinstance(payload, Mapping) else payload.data
        with self._lock:
            if parent not in self._versions:
                raise gexc.NotFound(f"Secret [{parent}] not found.")
            self._versions[parent].append((bytes(data), True))
            number = len(self._versions[parent])
        return secretmanager.SecretVersion(name=f"{parent}/versions/{number}")

    def set_secret(self, secret_id: str, value: str | bytes) -> None:
        """Create ``secret_id`` in `project` if needed and add ``value`` as its newest version."""
        path = f"projects/{self.project}/secrets/{secret_id}"
        with self._lock:
            self._versions.setdefault(path, [])
        data = value.encode() if isinstance(value, str) else value
        self.add_secret_version(request={"parent": path, "payload": {"data": data}})

    def disable_latest(self, secret_id: str) -> None:
        path = f"projects/{self.project}/secrets/{secret_id}"
        with self._lock:
            data, _ = self._versions[path][-1]
            self._versions[path][-1] = (data, False)

    # --- reading ------------------------------------------------------------------------------------
    def access_secret_version(
        self,
        request: Any = None,
        *,
        name: str | None = None,
        retry: Any = None,
        timeout: Any = None,
        metadata: Any = (),
    ) -> Any:
        import google_crc32c
        from google.cloud import secretmanager

        path = _name_of(request, name)
        secret, _, version = path.partition("/versions/")
        with self._lock:
            self.calls += 1
            if self.fail is not None:
                raise self.fail
            versions = self._versions.get(secret)
            if not versions:
                raise gexc.NotFound(f"Secret [{secret}] not found or has no versions.")
            if version == "latest":
                enabled = [i for i, (_, on) in enumerate(versions) if on]
                if not enabled:
                    raise gexc.FailedPrecondition(f"Secret Version [{path}] is in DISABLED state.")
                index = enabled[-1]
            elif version.isdigit() and 1 <= int(version) <= len(versions):
                index = int(version) - 1
                if not versions[index][1]:
                    raise gexc.FailedPrecondition(f"Secret Version [{path}] is in DISABLED state.")
            else:
                raise gexc.NotFound(f"Secret Version [{path}] not found.")
            data = versions[index][0]
        return secretmanager.AccessSecretVersionResponse(
            name=f"{secret}/versions/{index + 1}",
            payload={"data": data, "data_crc32c": google_crc32c.value(data)},
        )

    def close(self) -> None:
        """The real client's transport has ``close``; nothing to release here."""
