"""Amazon ECR through boto3 (``describe_images``); ECR's ``/v2`` login for mirroring.

The registry id and region come from ``docker_repo_prefix``
(``{account}.dkr.ecr[-fips].{region}.amazonaws.com[.cn]``), falling back to ``default_region``.
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ConfigError,
    ImageNotFoundError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
)
from .base import DockerRepository
from .distribution import Challenge, Credentials
from .reference import parse_ecr_host, validate_tag

if TYPE_CHECKING:
    from ..config.model import InfraConfig

NOT_FOUND = frozenset({"ImageNotFoundException", "RepositoryNotFoundException"})
AUTH_FAILED = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


def ecr_client(region: str, *, fips: bool = False, endpoint_url: str | None = None, profile: str | None = None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, use_fips_endpoint=fips)
    try:
        session = boto3.session.Session(profile_name=profile)
    except ProfileNotFound as err:
        raise ConfigError(
            "no such AWS profile", key="aws_profile", value=profile, fix="name a profile in ~/.aws/config"
        ) from err
    return session.client("ecr", region_name=region, endpoint_url=endpoint_url, config=config)


def _raise_for(err: Exception, what: str) -> None:
    """Map botocore errors onto ours; returns only for 'not found'."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in NOT_FOUND:
            return
        if code in AUTH_FAILED or status in (401, 403):
            raise RegistryAuthError(
                f"ECR refused {what} ({code or status}): check the AWS credentials and their ecr:DescribeImages "
                "permission on the repository"
            ) from err
        if code in ("ThrottlingException", "ServerException") or status == 429 or status >= 500:
            raise RegistryUnavailableError(f"ECR is unavailable or throttling ({code or status}) for {what}") from err
        raise RegistryError(f"ECR failed {what}: {code}") from err
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        raise RegistryAuthError(f"no AWS credentials for {what}: configure an IAM role or AWS_PROFILE") from err
    if isinstance(err, (EndpointConnectionError, BotoCoreError)):
        raise RegistryUnavailableError(f"ECR is unreachable for {what} ({type(err).__name__})") from err
    raise err


class ECRDockerRepository(DockerRepository):
    """ECR via its control-plane API; the client is made once and reused."""

    def __init__(
        self,
        docker_repo_prefix: str,
        *,
        client: Any = None,
        region: str = "us-east-1",
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        super().__init__(docker_repo_prefix)
        host = parse_ecr_host(self.prefix.host)
        self.registry_id = host.account if host else None
        self.region = host.region if host else region
        if client is None:
            client = ecr_client(self.region, fips=bool(host and host.fips), profile=profile, endpoint_url=endpoint_url)
        self.client = client

    @classmethod
    def from_config(cls, config: InfraConfig) -> ECRDockerRepository:
        from ..config.first_use import check_sdk_endpoint

        require_ecr_prefix(config)
        check_sdk_endpoint(config, "ecr_endpoint_url")
        return cls(
            config.docker_repo_prefix,
            region=config.default_region,
            profile=config.aws_profile,
            endpoint_url=config.ecr_endpoint_url,
        )

    def __repr__(self) -> str:
        return f"ECRDockerRepository({self.docker_repo_prefix!r})"

    def _ids(self, repository_name: str) -> dict[str, str]:
        ids = {"repositoryName": self.repository_path(repository_name)}
        if self.registry_id:
            ids["registryId"] = self.registry_id
        return ids

    def image_exists(self, image_tag: str, repository_name: str) -> bool:
        validate_tag(image_tag)
        ids = self._ids(repository_name)
        try:
            self.client.describe_images(**ids, imageIds=[{"imageTag": image_tag}])
        except Exception as err:
            _raise_for(err, f"checking {ids['repositoryName']}:{image_tag}")
            return False
        return True

    def get_latest_image_tag(self, repository_name: str) -> str:
        ids = self._ids(repository_name)
        what = f"listing images of {ids['repositoryName']}"
        best: tuple[datetime, str] | None = None
        try:
            paginator = self.client.get_paginator("describe_images")
            for page in paginator.paginate(**ids, filter={"tagStatus": "TAGGED"}):
                for image in page.get("imageDetails", []):
                    pushed = image.get("imagePushedAt") or datetime(1970, 1, 1, tzinfo=timezone.utc)
                    for tag in image.get("imageTags") or []:
                        if best is None or (pushed, tag) > best:
                            best = (pushed, tag)
        except Exception as err:
            _raise_for(err, what)
            raise ImageNotFoundError(
                f"ECR repository {ids['repositoryName']!r} does not exist in {self.prefix.host}"
            ) from err
        if best is None:
            raise ImageNotFoundError(f"ECR repository {ids['repositoryName']!r} has no tagged image")
        return best[1]

    def ensure_repository(self, repository_path: str) -> None:
        """Create ``repository_path`` if missing: ECR, unlike most registries, does not on first push."""
        ids = {"registryId": self.registry_id} if self.registry_id else {}
        try:
            self.client.create_repository(repositoryName=repository_path, **ids)
        except Exception as err:
            from botocore.exceptions import ClientError

            code = err.response.get("Error", {}).get("Code") if isinstance(err, ClientError) else None
            if code == "RepositoryAlreadyExistsException":
                return
            _raise_for(err, f"creating repository {repository_path}")
            raise


class ECRCredentials:
    """ECR's ``/v2`` login (user ``AWS``) from ``get_authorization_token``, cached until it expires."""

    def __init__(self, client: Any, registry_id: str | None = None) -> None:
        self._client = client
        self._registry_id = registry_id
        self._cached: tuple[Credentials, float] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "ECRCredentials()"

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None:
        with self._lock:
            if self._cached is not None and self._cached[1] > time.time():
                return self._cached[0]
            try:
                kwargs = {"registryIds": [self._registry_id]} if self._registry_id else {}
                data = self._client.get_authorization_token(**kwargs)["authorizationData"][0]
            except Exception as err:
                _raise_for(err, "getting an ECR login token")
                raise
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires = data.get("expiresAt")
            deadline = expires.timestamp() - 300 if isinstance(expires, datetime) else time.time() + 3600
            self._cached = (Credentials(user, password), deadline)
            return self._cached[0]


def require_ecr_prefix(config: InfraConfig) -> None:
    if parse_ecr_host(config.docker_repo_prefix.split("/", 1)[0].lower()) is None:
        raise ConfigError(
            f"{config.docker_repo_prefix!r} is not an ECR registry",
            key="docker_repo_prefix",
            value=config.docker_repo_prefix,
            fix="use {account}.dkr.ecr.{region}.amazonaws.com, or set docker_registry_type to match the registry",
        )
