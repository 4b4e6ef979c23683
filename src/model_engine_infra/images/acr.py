"""Azure Container Registry through its ``/v2`` API with the Entra ID token exchange.

ACR's bearer challenge points at ``https://{registry}/oauth2/token``. We trade an Entra ID access
token for an ACR refresh token at ``/oauth2/exchange`` (beside the realm), then the generic client
trades that refresh token for a scoped access token at ``/oauth2/token``. No admin password, no
``az acr login``: the pod's workload identity (DefaultAzureCredential) is enough.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError, RegistryAuthError, RegistryUnavailableError
from .distribution import Challenge, Credentials, plain_http_allowed
from .oci import OCIDockerRepository
from .reference import ACR_HOST

if TYPE_CHECKING:
    from ..config.model import InfraConfig

ACR_SCOPE = "https://containerregistry.azure.net/.default"
# ACR's documented user name for a refresh token obtained through the exchange.
ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
REFRESH_MARGIN = 300.0  # seconds before the Entra ID token's expiry that we exchange again


class TokenCredential(Protocol):
    """azure-core's ``TokenCredential``: ``get_token`` returns an object with ``token`` and ``expires_on``."""

    def get_token(self, *scopes: str) -> Any: ...


class ACRExchangeCredentials:
    """Entra ID token -> ACR refresh token (``/oauth2/exchange``), cached until the AAD token expires."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        tenant: str | None = None,
        scope: str = ACR_SCOPE,
        insecure_registries: tuple[str, ...] = (),
    ) -> None:
        self._credential = credential
        self._tenant = tenant
        self._scope = scope
        self._insecure = insecure_registries
        self._cached: dict[str, tuple[Credentials, float]] = {}
        self._lock = threading.Lock()
        self.exchanges = 0  # how many refresh tokens were obtained (tests)

    def __repr__(self) -> str:
        return f"ACRExchangeCredentials({type(self._credential).__name__})"

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None:
        realm = urlsplit(challenge.realm)
        exchange_url = f"{realm.scheme}://{realm.netloc}/oauth2/exchange"
        if realm.scheme != "https" and not plain_http_allowed(realm.netloc, self._insecure):
            raise RegistryAuthError(f"refusing to send an Entra ID token over plain HTTP to {realm.netloc}")
        service = challenge.service or realm.netloc
        with self._lock:
            cached = self._cached.get(service)
            if cached is not None and cached[1] > time.time():
                return cached[0]
            try:
                aad = self._credential.get_token(self._scope)
            except Exception as err:  # azure-identity raises ClientAuthenticationError and others
                raise RegistryAuthError(
                    f"could not get an Entra ID token for ACR {service} ({type(err).__name__}): check the "
                    "managed / workload identity and that it has the AcrPull role"
                ) from err
            form = {"grant_type": "access_token", "service": service, "access_token": aad.token}
            if self._tenant:
                form["tenant"] = self._tenant
            try:
                response = http.post(exchange_url, data=form)
            except httpx.TransportError as err:
                raise RegistryUnavailableError(
                    f"ACR token exchange at {realm.netloc} is unreachable ({type(err).__name__})"
                ) from err
            if response.status_code in (400, 401, 403):
                raise RegistryAuthError(
                    f"ACR {service} refused the Entra ID token ({response.status_code}): assign the identity "
                    "the AcrPull role (AcrPush for mirroring) on the registry"
                )
            if response.status_code != 200:
                raise RegistryUnavailableError(f"ACR token exchange at {realm.netloc} answered {response.status_code}")
            try:
                refresh = str(response.json()["refresh_token"])
            except (ValueError, KeyError) as err:
                raise RegistryUnavailableError(f"ACR token exchange at {realm.netloc} sent no refresh token") from err
            self.exchanges += 1
            credentials = Credentials(ACR_TOKEN_USER, refresh, identity_token=True)
            self._cached[service] = (credentials, float(aad.expires_on) - REFRESH_MARGIN)
            return credentials


class ACRDockerRepository(OCIDockerRepository):
    """ACR over ``/v2``; builds go through ``az acr build`` or CI, not through this class."""

    def __init__(
        self,
        docker_repo_prefix: str,
        *,
        credential: TokenCredential | None = None,
        tenant: str | None = None,
        registry_url: str | None = None,
        insecure_registries: tuple[str, ...] = (),
        trusted_auth_hosts: tuple[str, ...] = (),
        ca_bundle: str | None = None,
    ) -> None:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        assert credential is not None
        self.exchange = ACRExchangeCredentials(credential, tenant=tenant, insecure_registries=insecure_registries)
        super().__init__(
            docker_repo_prefix,
            credentials=self.exchange,
            registry_url=registry_url,
            insecure_registries=insecure_registries,
            trusted_auth_hosts=trusted_auth_hosts,
            ca_bundle=ca_bundle,
        )

    @classmethod
    def from_config(cls, config: InfraConfig) -> ACRDockerRepository:
        host = config.docker_repo_prefix.strip().split("/", 1)[0].lower()
        if config.docker_registry_type is None and not ACR_HOST.match(host):
            raise ConfigError(
                f"{config.docker_repo_prefix!r} is not an ACR registry",
                key="docker_repo_prefix",
                value=config.docker_repo_prefix,
                fix="use {name}.azurecr.io, or set docker_registry_type to match the registry",
            )
        credential: Any = None
        if config.azure_client_id:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=config.azure_client_id)
        return cls(
            config.docker_repo_prefix,
            credential=credential,
            registry_url=config.registry_endpoint_url,
            insecure_registries=config.insecure_registries,
            trusted_auth_hosts=config.registry_trusted_auth_hosts,
            ca_bundle=config.registry_ca_bundle,
        )
