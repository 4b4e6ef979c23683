"""A small client for the OCI Distribution API: scheme policy, auth challenges, token cache, errors.

Every registry we talk to over ``/v2`` (on-prem, local, ACR, Artifact Registry, ECR for mirroring)
goes through `RegistryClient`, so the auth flow and the error mapping exist once: unreachable,
5xx and 429 raise `RegistryUnavailableError`, 401/403 raise `RegistryAuthError`, and callers decide
what a 404 means. One ``httpx.Client`` per `RegistryClient` is reused for every request.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError, RegistryAuthError, RegistryError, RegistryUnavailableError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
# Without these a registry may convert the manifest or answer 404 for an index-only tag.
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"})
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when the token server gives no expires_in (token spec)
USER_AGENT = "model-engine-infra"
MIB = 1024 * 1024
# Bodies read into memory (manifests, indexes, tag lists, configs, errors, tokens) stop here; containerd
# refuses manifests over 4 MiB too. Blobs are streamed and never held whole.
MAX_RESPONSE_BYTES = 4 * MIB
MAX_TOKEN_RESPONSE_BYTES = 1 * MIB
MAX_REDIRECTS = 10
# Token servers on another host that a registry's own login may go to without configuration.
BUILT_IN_AUTH_HOSTS: dict[str, tuple[str, ...]] = {
    "registry-1.docker.io": ("auth.docker.io",),
    "docker.io": ("auth.docker.io",),
    "index.docker.io": ("auth.docker.io",),
}


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``basic`` or ``bearer`` with its parameters."""

    scheme: str
    realm: str = ""
    service: str | None = None
    scope: str | None = None


_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str | None) -> Challenge | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params.get("realm", ""), params.get("service"), params.get("scope"))


@dataclass(frozen=True, repr=False)
class Credentials:
    """A login for one registry. ``identity_token``: the password is an OAuth2 refresh token."""

    username: str
    password: str = field(repr=False)
    identity_token: bool = False

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', identity_token={self.identity_token})"


class CredentialSource(Protocol):
    """Gives credentials for a challenge; may call out (ECR, Entra ID, ADC) through ``http``."""

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None: ...


class StaticCredentials:
    """A fixed user and password (htpasswd, a robot account, a Docker config entry)."""

    def __init__(self, username: str, password: str, *, identity_token: bool = False) -> None:
        self._credentials = Credentials(username, password, identity_token)

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None:
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticCredentials(username={self._credentials.username!r}, password='***')"


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def plain_http_allowed(host: str, insecure_registries: Iterable[str] = ()) -> bool:
    """Where Docker allows plain HTTP: localhost, 127.0.0.0/8, ::1 and the configured registries.

    An ``insecure_registries`` entry is ``host``, ``host:port`` or a CIDR such as ``10.0.0.0/8``.
    """
    host = host.lower()
    name = _host_only(host)
    if name == "localhost":
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return True
    for entry in (e.strip().lower() for e in insecure_registries):
        if entry in (host, name):
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def registry_base_url(host: str, insecure_registries: Iterable[str] = ()) -> str:
    scheme = "http" if plain_http_allowed(host, insecure_registries) else "https"
    return f"{scheme}://{host}"


def _certificate_rejection(err: BaseException) -> str | None:
    """The reason when ``err`` comes from a TLS certificate we do not trust, else None."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or "certificate verify failed"
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    return "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text else None


def tls_verify(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """Verification for HTTPS: the system store, or a private CA bundle (PEM path)."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


def distribution_errors(response: httpx.Response) -> set[str]:
    """The ``errors[].code`` values of a Distribution error body (empty when there is none)."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict)}


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


@dataclass
class _Token:
    value: str = field(repr=False)
    expires: float = 0.0


class RegistryClient:
    """One registry's ``/v2`` API over one reused HTTP session, with auth handled.

    The first request goes out without credentials; the registry's challenge says Basic or
    Bearer. For Bearer, tokens are fetched per scope set and cached until shortly before they
    expire, so later requests carry a token up front and cost no extra round trip.
    """

    def __init__(
        self,
        host: str,
        *,
        credentials: CredentialSource | None = None,
        insecure_registries: Sequence[str] = (),
        trusted_auth_hosts: Sequence[str] = (),
        ca_bundle: str | None = None,
        base_url: str | None = None,
        session: httpx.Client | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host.lower()
        self.insecure_registries = tuple(insecure_registries)
        self.trusted_auth_hosts = tuple(h.strip().lower() for h in trusted_auth_hosts if h.strip())
        self.base_url = (base_url or registry_base_url(self.host, self.insecure_registries)).rstrip("/")
        # Like Docker with an insecure registry: try HTTPS first, fall back to plain HTTP once if the
        # first contact fails. A loopback registry with TLS and a private CA then works too.
        self._plain_fallback: str | None = None
        self._abandoned_https: str | None = None
        if base_url is None and self.base_url.startswith("http://"):
            self._plain_fallback, self.base_url = self.base_url, "https://" + self.base_url[len("http://") :]
        endpoint = urlsplit(self.base_url)
        if endpoint.scheme == "http" and not plain_http_allowed(endpoint.netloc, self.insecure_registries):
            raise ConfigError(
                f"refusing plain HTTP to registry {endpoint.netloc}",
                key="insecure_registries",
                value=list(self.insecure_registries),
                fix=f"add {endpoint.netloc} to insecure_registries, or serve the registry over HTTPS",
            )
        self._credentials = credentials
        self._owns_session = session is None
        self._http = session or httpx.Client(
            verify=tls_verify(ca_bundle),
            timeout=timeout,
            follow_redirects=False,  # followed by `_send`, which checks every hop (blob downloads redirect)
            headers={"User-Agent": USER_AGENT},
        )
        self._retries = retries
        self._backoff = backoff
        self._clock = clock
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str | None, tuple[str, ...]], _Token] = {}
        self._withheld_from: str | None = None  # a token realm our credentials were not sent to
        self._lock = threading.Lock()
        self.token_requests = 0  # how many times a token server was asked (tests and benchmarks)

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    @property
    def http(self) -> httpx.Client:
        return self._http

    def close(self) -> None:
        if self._owns_session:
            self._http.close()

    # --- requests -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        what: str = "",
        max_body: int = MAX_RESPONSE_BYTES,
    ) -> httpx.Response:
        """Send one request with auth, retrying transport errors, 5xx and 429 for replayable ones.

        Returns the response for any status but 401, 403, 429 and 5xx, which raise. With
        ``stream=True`` the caller must close the response; otherwise the body is read, and a body
        over ``max_body`` bytes raises `RegistryError` (nothing bigger is ever held in memory).
        Redirects are followed only where `_send` allows.
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        replayable = not isinstance(content, Iterator)
        scopes = tuple(scopes)
        what = what or f"{method} {path}"
        attempt = 0
        reauthenticated = False
        while True:
            request = self._http.build_request(method, url, headers=dict(headers or {}), params=params, content=content)
            authorization = self._authorization(scopes) if self.may_receive_credentials(request.url.netloc) else None
            if authorization is not None:
                request.headers["Authorization"] = authorization
            try:
                response = self._send(request, what)
                self._plain_fallback = None  # the scheme answered: keep it
            except httpx.TransportError as err:
                untrusted = _certificate_rejection(err)
                if untrusted is not None:
                    raise RegistryUnavailableError(
                        f"registry {self.host} speaks HTTPS but its certificate is not trusted ({untrusted}) "
                        f"during {what}: set registry_ca_bundle to the PEM file of its CA"
                    ) from err
                with self._lock:  # first contacts may race (a mirror asks source and target at once)
                    if self._plain_fallback is not None and url.startswith(self.base_url):
                        self._abandoned_https = self.base_url
                        self.base_url, self._plain_fallback = self._plain_fallback, None
                abandoned = self._abandoned_https
                if abandoned is not None and url.startswith(abandoned + "/"):
                    url = self.base_url + url[len(abandoned) :]
                    continue
                if replayable and attempt < self._retries:
                    attempt += 1
                    time.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise RegistryUnavailableError(
                    f"registry {self.host} is unreachable ({type(err).__name__}) during {what}: "
                    "check the address, the network and the TLS settings (registry_ca_bundle)"
                ) from err
            status = response.status_code
            if status == 401 and not reauthenticated and replayable:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
                _discard(response)
                if challenge is not None and challenge.scheme in ("basic", "bearer"):
                    reauthenticated = True
                    if challenge.scope:
                        scopes = tuple(dict.fromkeys((*scopes, *challenge.scope.split(" "))))
                    self._learn(challenge, scopes)
                    continue
            if status in (401, 403):
                _discard(response)
                raise RegistryAuthError(self._auth_message(status, what))
            if status == 429 or status >= 500:
                retry_after = response.headers.get("Retry-After", "")
                _discard(response)
                if replayable and attempt < self._retries:
                    attempt += 1
                    delay = float(retry_after) if retry_after.isdigit() else self._backoff * 2 ** (attempt - 1)
                    time.sleep(min(delay, 5.0))
                    continue
                reason = "throttled the request (429)" if status == 429 else f"answered {status}"
                raise RegistryUnavailableError(f"registry {self.host} {reason} during {what}; retry later")
            if not stream:
                read_capped(response, max_body, f"registry {self.host}", what)
            return response

    def may_receive_credentials(self, netloc: str | bytes) -> bool:
        """Whether our login (or a token made from it) may go to ``netloc``: the registry's own host, its
        configured endpoint, Docker Hub's token server for Docker Hub, or ``registry_trusted_auth_hosts``."""
        netloc = (netloc.decode() if isinstance(netloc, bytes) else netloc).lower()
        host = _host_only(netloc)
        own = {self.host, urlsplit(self.base_url).netloc.lower()}
        if self._plain_fallback is not None:
            own.add(urlsplit(self._plain_fallback).netloc.lower())
        if host in {_host_only(name) for name in own}:
            return True
        trusted = (*self.trusted_auth_hosts, *BUILT_IN_AUTH_HOSTS.get(self.host, ()))
        return any(entry in (netloc, host) for entry in trusted)

    def _send(self, request: httpx.Request, what: str) -> httpx.Response:
        """Send, following redirects one hop at a time: never to plain HTTP on a host not allowed it.

        httpx drops ``Authorization`` when a redirect leaves the origin; a hop to plain HTTP on a host
        outside localhost and ``insecure_registries`` is refused, so its answer is never trusted.
        """
        for _ in range(MAX_REDIRECTS + 1):
            response = self._http.send(request, stream=True, follow_redirects=False)
            following = response.next_request
            if following is None:
                return response
            response.close()
            target = following.url
            if target.scheme != "https" and not plain_http_allowed(target.netloc.decode(), self.insecure_registries):
                raise RegistryUnavailableError(
                    f"registry {self.host} redirected {what} from {request.url.scheme}://{request.url.netloc.decode()} "
                    f"to plain HTTP at {target.netloc.decode()}, which is not allowed plain HTTP; refusing to follow "
                    "(add that host to insecure_registries only if it is yours)"
                )
            request = following
        raise RegistryUnavailableError(f"registry {self.host} redirected {what} more than {MAX_REDIRECTS} times")

    def _auth_message(self, status: int, what: str) -> str:
        if self._withheld_from is not None:
            return (
                f"registry {self.host} refused an anonymous token ({status}) for {what}: its token server "
                f"{self._withheld_from} is on another host, so our credentials were not sent there. If you trust it, "
                "add it to registry_trusted_auth_hosts"
            )
        if self._challenge is not None and self._credentials is None:
            return (
                f"registry {self.host} requires credentials ({status}) for {what}: configure "
                "registry_username/registry_password or registry_auth_file"
            )
        return (
            f"registry {self.host} rejected our credentials ({status}) for {what}: check the login and "
            "that it may pull (and push, for mirroring) this repository"
        )

    # --- auth ---------------------------------------------------------------------------------

    def _learn(self, challenge: Challenge, scopes: tuple[str, ...]) -> None:
        with self._lock:
            self._challenge = Challenge(challenge.scheme, challenge.realm, challenge.service)
            if challenge.scheme == "bearer":
                self._tokens.pop((challenge.realm, challenge.service, tuple(sorted(scopes))), None)

    def _credentials_for(self, challenge: Challenge) -> Credentials | None:
        return self._credentials(challenge, self._http) if self._credentials is not None else None

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credentials = self._credentials_for(challenge)
            if credentials is None:
                return None
            raw = f"{credentials.username}:{credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return "Bearer " + self._token(challenge, scopes)

    def _token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        key = (challenge.realm, challenge.service, tuple(sorted(scopes)))
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires > self._clock():
                return cached.value
            token = self._fetch_token(challenge, key[2])
            self._tokens[key] = token
            return token.value

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = urlsplit(challenge.realm)
        if realm.scheme not in ("http", "https") or not realm.netloc:
            raise RegistryAuthError(f"registry {self.host} sent an unusable token realm {challenge.realm!r}")
        if realm.scheme == "http" and not plain_http_allowed(realm.netloc, self.insecure_registries):
            raise RegistryAuthError(
                f"registry {self.host} asks for credentials over plain HTTP at {realm.netloc}; refusing"
            )
        # The registry names the realm: a login goes only to its own host or hosts the config trusts.
        trusted = self.may_receive_credentials(realm.netloc)
        credentials = self._credentials_for(challenge) if trusted else None
        if not trusted and self._credentials is not None:
            self._withheld_from = realm.netloc
        started = self._clock()
        self.token_requests += 1
        what = f"fetching a token for {' '.join(scopes) or 'the registry'}"
        try:
            if credentials is not None and credentials.identity_token:
                form = {"grant_type": "refresh_token", "client_id": USER_AGENT, "refresh_token": credentials.password}
                if challenge.service:
                    form["service"] = challenge.service
                if scopes:
                    form["scope"] = " ".join(scopes)
                request = self._http.build_request("POST", challenge.realm, data=form)
            else:
                query: list[tuple[str, str | int | float | bool | None]] = (
                    [("service", challenge.service)] if challenge.service else []
                )
                query += [("scope", scope) for scope in scopes]
                request = self._http.build_request("GET", challenge.realm, params=query)
                if credentials is not None:
                    raw = f"{credentials.username}:{credentials.password}".encode()
                    request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            response = self._send(request, what)
            read_capped(response, MAX_TOKEN_RESPONSE_BYTES, f"token server {realm.netloc}", what)
        except httpx.TransportError as err:
            raise RegistryUnavailableError(
                f"token server {realm.netloc} for registry {self.host} is unreachable ({type(err).__name__})"
            ) from err
        if response.status_code in (400, 401, 403):
            if self._withheld_from is not None:
                raise RegistryAuthError(self._auth_message(response.status_code, what))
            raise RegistryAuthError(
                f"token server {realm.netloc} refused a token for registry {self.host} "
                f"({response.status_code}): check the credentials and their access to {' '.join(scopes) or 'it'}"
            )
        if response.status_code != 200:
            raise RegistryUnavailableError(
                f"token server {realm.netloc} for registry {self.host} answered {response.status_code}"
            )
        try:
            body: dict[str, Any] = response.json()
            value = str(body.get("token") or body["access_token"])
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise RegistryUnavailableError(
                f"token server {realm.netloc} for registry {self.host} sent no token"
            ) from err
        # Renew a little early so a token never expires between our check and the registry's.
        return _Token(value, started + max(lifetime - min(30.0, lifetime * 0.1), 1.0))


def read_capped(response: httpx.Response, limit: int, who: str, what: str) -> None:
    """Read a streamed response's body into it, refusing more than ``limit`` bytes (after decoding)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise RegistryError(_too_big(who, what, f"{int(declared)} bytes", limit))
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                raise RegistryError(_too_big(who, what, f"more than {limit} bytes", limit))
            chunks.append(chunk)
    except httpx.TransportError as err:
        raise RegistryUnavailableError(f"{who} broke off its answer during {what} ({type(err).__name__})") from err
    finally:
        response.close()
    response._content = b"".join(chunks)


def _too_big(who: str, what: str, size: str, limit: int) -> str:
    return f"{who} answered {size} during {what}; the limit is {limit // MIB} MiB, so the answer was not read"


def _discard(response: httpx.Response) -> None:
    response.close()
