"""Where Redis credentials come from: one small `TokenSource` per kind of credential.

A source only fetches; caching, refreshing ahead of expiry and single-flight live in
`credentials.RefreshingCredentialProvider`, so every source gets them the same way. Cloud SDKs are
imported inside the source that needs them, when it first fetches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, CredentialFetchError

if TYPE_CHECKING:
    from ..secrets.base import SecretStore

AZURE_REDIS_SCOPE = "https://redis.azure.com/.default"
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ELASTICACHE_TOKEN_SECONDS = 900  # AWS fixes IAM auth tokens at 15 minutes
ADC_FALLBACK_REFRESH_SECONDS = 3000.0  # ADC tokens last an hour; used when a credential reports no expiry


@dataclass(frozen=True)
class Token:
    """One credential. ``expires_in``/``refresh_in`` are seconds from the fetch; None means never."""

    username: str | None
    password: str = field(repr=False)
    expires_in: float | None = None
    refresh_in: float | None = None

    def credentials(self) -> tuple[str] | tuple[str, str]:
        """The tuple redis-py's ``CredentialProvider.get_credentials`` returns."""
        return (self.username, self.password) if self.username else (self.password,)


class TokenSource(Protocol):
    """Fetches a fresh `Token`; ``description`` names the source in errors (never the secret)."""

    description: str

    def fetch(self) -> Token: ...


class StaticTokenSource:
    """A password that never expires (a URL's or ``REDIS_AUTH_TOKEN``), kept out of every URL we use."""

    def __init__(self, username: str | None, password: str, *, description: str) -> None:
        self._token = Token(username, password)
        self.description = description

    def __repr__(self) -> str:
        return f"StaticTokenSource({self.description!r})"

    def fetch(self) -> Token:
        return self._token


class SecretTokenSource:
    """A password kept in a secret store, re-read every ``refresh_in`` seconds to follow rotation.

    ``initial`` is the token read while the connection was being built, so the first connect does
    not read the secret twice.
    """

    def __init__(
        self,
        store: SecretStore,
        secret_name: str,
        extract: Callable[[dict[str, Any]], Token],
        *,
        refresh_in: float,
        initial: Token | None = None,
    ) -> None:
        self._store = store
        self._name = secret_name
        self._extract = extract
        self._refresh_in = refresh_in
        self._initial = initial
        self.description = f"secret {secret_name!r} in {store.store_name}"

    def __repr__(self) -> str:
        return f"SecretTokenSource({self.description!r})"

    def fetch(self) -> Token:
        initial, self._initial = self._initial, None
        if initial is None:
            invalidate = getattr(self._store, "invalidate", None)
            if callable(invalidate):
                invalidate(self._name)  # the provider caches; a refresh must see the store's current value
            initial = self._extract(read_secret_json(self._store, self._name))
        return Token(initial.username, initial.password, refresh_in=self._refresh_in)


def read_secret_json(store: SecretStore, name: str) -> dict[str, Any]:
    """The secret as a JSON object; a missing or unreadable secret is a `CredentialFetchError`."""
    from ..errors import SecretError

    try:
        value = store.get(name)
    except SecretError as err:
        raise CredentialFetchError(f"could not read Redis settings from {store.store_name}: {err}") from err
    if not isinstance(value, dict):
        raise ConfigError(
            f"secret {name!r} in {store.store_name} is not a JSON object",
            key=f"secret {name}",
            value="***",
            fix="store the Redis settings as a JSON object",
        )
    return value


class EntraIdTokenSource:
    """An Entra ID access token for Azure Cache for Redis; the username is the identity's object id.

    ``credential`` is anything with ``get_token(scope)`` (an ``azure.identity`` credential or a fake);
    without one, a ``DefaultAzureCredential`` is made once on the first fetch.
    """

    def __init__(
        self,
        username: str,
        *,
        credential: Any = None,
        client_id: str | None = None,
        scope: str = AZURE_REDIS_SCOPE,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._username = username
        self._credential = credential
        self._client_id = client_id
        self._scope = scope
        self._wall_clock = wall_clock
        self.description = f"Entra ID token for {scope}"

    def __repr__(self) -> str:
        return f"EntraIdTokenSource(username={self._username!r}, scope={self._scope!r})"

    def fetch(self) -> Token:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            kwargs = {"managed_identity_client_id": self._client_id} if self._client_id else {}
            self._credential = DefaultAzureCredential(**kwargs)
        access = self._credential.get_token(self._scope)
        return Token(self._username, access.token, expires_in=float(access.expires_on) - self._wall_clock())


class ElastiCacheIamTokenSource:
    """A SigV4-presigned ``connect`` request: ElastiCache's IAM auth token (15 minutes, TLS only).

    Signed locally with botocore (no network call); ``session`` is a boto3 or botocore session whose
    credentials may themselves refresh (IRSA).
    """

    def __init__(
        self,
        user_id: str,
        cache_name: str,
        region: str,
        *,
        session: Any = None,
        serverless: bool = False,
    ) -> None:
        self._user = user_id
        self._cache = cache_name
        self._region = region
        self._session = session
        self._serverless = serverless
        self._signer: Any = None
        self.description = f"ElastiCache IAM token for {cache_name!r} (user {user_id!r}, {region})"

    def __repr__(self) -> str:
        return f"ElastiCacheIamTokenSource({self.description!r})"

    def _make_signer(self) -> Any:
        from botocore.model import ServiceId
        from botocore.signers import RequestSigner

        if self._session is None:
            import boto3

            self._session = boto3.Session()
        core = getattr(self._session, "_session", self._session)  # boto3.Session wraps a botocore one
        credentials = core.get_credentials()
        if credentials is None:
            raise CredentialFetchError(f"{self.description}: no AWS credentials found (IRSA role, AWS_PROFILE or keys)")
        return RequestSigner(
            ServiceId("elasticache"),
            self._region,
            "elasticache",
            "v4",
            credentials,
            core.get_component("event_emitter"),
        )

    def fetch(self) -> Token:
        from urllib.parse import urlencode

        if self._signer is None:
            self._signer = self._make_signer()
        params = {"Action": "connect", "User": self._user}
        if self._serverless:
            params["ResourceType"] = "ServerlessCache"
        request = {
            "method": "GET",
            "url": f"https://{self._cache}/?{urlencode(params)}",
            "body": {},
            "headers": {},
            "context": {},
        }
        signed = self._signer.generate_presigned_url(
            request, operation_name="connect", expires_in=ELASTICACHE_TOKEN_SECONDS, region_name=self._region
        )
        return Token(self._user, signed.removeprefix("https://"), expires_in=float(ELASTICACHE_TOKEN_SECONDS))


class MemorystoreTokenSource:
    """A Google access token from Application Default Credentials (about one hour) for Memorystore IAM auth."""

    def __init__(
        self,
        username: str | None = None,
        *,
        credentials: Any = None,
        request: Any = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._username = username
        self._credentials = credentials
        self._request = request
        self._wall_clock = wall_clock
        self.description = "Google access token (Application Default Credentials) for Memorystore"

    def __repr__(self) -> str:
        return f"MemorystoreTokenSource(username={self._username!r})"

    def fetch(self) -> Token:
        if self._credentials is None:
            import google.auth

            self._credentials, _ = google.auth.default(scopes=[GOOGLE_SCOPE])
        if self._request is None:
            from google.auth.transport.requests import Request

            self._request = Request()
        self._credentials.refresh(self._request)
        expiry = getattr(self._credentials, "expiry", None)
        expires_in = None
        if expiry is not None:
            from datetime import timezone

            aware = expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)  # google-auth uses naive UTC
            expires_in = aware.timestamp() - self._wall_clock()
        refresh_in = None if expires_in is not None else ADC_FALLBACK_REFRESH_SECONDS
        return Token(self._username, str(self._credentials.token), expires_in=expires_in, refresh_in=refresh_in)
