"""Celery's S3 result backend with an endpoint for MinIO, one client, and SHA-256 object checksums.

Celery's own backend builds its resource once but cannot set an addressing style nor a checksum
algorithm. With ``celery_enable_sha256`` every result object is written with
``ChecksumAlgorithm=SHA256`` (an ``x-amz-checksum-sha256`` header computed by botocore), so no
MD5 (``Content-MD5``) or CRC is involved; FIPS deployments need exactly that.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from celery.backends.s3 import S3Backend
from celery.exceptions import ImproperlyConfigured


class ChecksummedS3Backend(S3Backend):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        conf = kwargs["app"].conf
        self.addressing_style: str | None = conf.get("s3_addressing_style")
        self.checksum_sha256: bool = bool(conf.get("s3_checksum_sha256"))
        super().__init__(**kwargs)

    def set(self, key: Any, value: Any) -> None:
        if not self.checksum_sha256:
            super().set(key, value)
            return
        name = key.decode() if isinstance(key, bytes) else key
        self._get_s3_object(name).put(Body=value, ChecksumAlgorithm="SHA256")

    def _connect_to_s3(self) -> Any:
        session = boto3.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            region_name=self.aws_region,
        )
        if session.get_credentials() is None:
            from ..storage.s3 import credentials_hint  # IRSA advice on AWS only, the access key on MinIO

            raise ImproperlyConfigured(
                f"no credentials for the s3 result backend: none found for {credentials_hint(self.endpoint_url)}"
            )
        options: dict[str, Any] = {"retries": {"mode": "standard"}}
        if self.addressing_style:
            options["s3"] = {"addressing_style": self.addressing_style}
        if self.checksum_sha256:
            # Only add checksums where an operation requires one: the SHA-256 we ask for on put.
            options["request_checksum_calculation"] = "when_required"
        return session.resource("s3", endpoint_url=self.endpoint_url, config=Config(**options))
