"""Google Artifact Registry through its ``/v2`` API with an ADC access token.

Artifact Registry accepts the user ``oauth2accesstoken`` with an OAuth2 access token as password
(what ``gcloud auth configure-docker`` sets up), so the generic client's challenge flow does the
rest. ``docker_repo_prefix`` must be ``{location}-docker.pkg.dev/{project}/{repository}``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import RegistryAuthError, RegistryUnavailableError
from .distribution import Challenge, Credentials
from .oci import OCIDockerRepository
from .reference import parse_gar_prefix

if TYPE_CHECKING:
    from ..config.model import InfraConfig

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GAR_USER = "oauth2accesstoken"

TokenSource = Callable[[], str]


class ADCTokenSource:
    """Application Default Credentials, refreshed only when google-auth says the token is stale."""

    def __init__(self, credentials: Any = None) -> None:
        if credentials is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            except DefaultCredentialsError as err:
                raise RegistryAuthError(
                    "no Google credentials for Artifact Registry: use Workload Identity or "
                    "GOOGLE_APPLICATION_CREDENTIALS (gcloud auth application-default login on a workstation)"
                ) from err
        self._credentials = credentials
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "ADCTokenSource()"

    def __call__(self) -> str:
        from google.auth.exceptions import GoogleAuthError, TransportError
        from google.auth.transport.requests import Request

        with self._lock:
            if not self._credentials.valid:
                try:
                    self._credentials.refresh(Request())
                except TransportError as err:
                    raise RegistryUnavailableError(
                        f"could not reach Google's token endpoint for an ADC token ({type(err).__name__})"
                    ) from err
                except GoogleAuthError as err:
                    raise RegistryAuthError(
                        f"could not get an ADC access token ({type(err).__name__}): check workload identity "
                        "and the Artifact Registry Reader role"
                    ) from err
            return str(self._credentials.token)


class GARCredentials:
    """``oauth2accesstoken`` + a current access token from the token source."""

    def __init__(self, token_source: TokenSource) -> None:
        self._token_source = token_source

    def __repr__(self) -> str:
        return "GARCredentials()"

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None:
        return Credentials(GAR_USER, self._token_source())


class GARDockerRepository(OCIDockerRepository):
    """Artifact Registry over ``/v2``; builds go through Cloud Build or CI, not through this class."""

    def __init__(
        self,
        docker_repo_prefix: str,
        *,
        token_source: TokenSource | None = None,
        registry_url: str | None = None,
        insecure_registries: tuple[str, ...] = (),
        trusted_auth_hosts: tuple[str, ...] = (),
        ca_bundle: str | None = None,
    ) -> None:
        self.gar = parse_gar_prefix(docker_repo_prefix)
        super().__init__(
            docker_repo_prefix,
            credentials=GARCredentials(token_source or ADCTokenSource()),
            registry_url=registry_url,
            insecure_registries=insecure_registries,
            trusted_auth_hosts=trusted_auth_hosts,
            ca_bundle=ca_bundle,
        )

    @classmethod
    def from_config(cls, config: InfraConfig) -> GARDockerRepository:
        return cls(
            config.docker_repo_prefix,
            registry_url=config.registry_endpoint_url,
            insecure_registries=config.insecure_registries,
            trusted_auth_hosts=config.registry_trusted_auth_hosts,
            ca_bundle=config.registry_ca_bundle,
        )
