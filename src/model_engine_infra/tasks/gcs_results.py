"""Celery's GCS result backend, honouring ``gcs_endpoint_url`` (fake-gcs-server).

Celery's backend always builds ``Client(project=...)`` on Application Default Credentials and
Google's public endpoint, so an emulator configured through the library's config was ignored (and
the backend failed on a machine without ADC). With an endpoint the client here is anonymous, as
`storage.gcs.make_client` builds it; without one it is Celery's own. A module of its own so that an
S3 deployment never imports Google's SDK (`results.py`) and this one never imports boto3.
"""

from __future__ import annotations

import os
from typing import Any

from celery.backends.gcs import GCSBackendBase


class EndpointGCSBackend(GCSBackendBase):  # type: ignore[misc]
    """Celery's GCS backend without Firestore (no chords), pointed at ``gcs_endpoint_url`` when set."""

    _client: Any
    _pid: int

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_url: str | None = self.app.conf.get("gcs_endpoint_url")

    @property
    def client(self) -> Any:
        if not self.endpoint_url:
            return super().client
        with self._client_lock:
            if self._client is None or self._pid != os.getpid():  # one client per process, as Celery does
                from google.auth.credentials import AnonymousCredentials
                from google.cloud import storage

                self._client = storage.Client(
                    project=self.project,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": self.endpoint_url},
                )
                self._pid = os.getpid()
            return self._client
