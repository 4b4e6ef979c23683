"""A token server in front of a real docker-registry (bearer auth, ACR's token exchange).

It speaks the Docker token protocol (GET with basic auth, POST refresh_token) and ACR's
``/oauth2/exchange``; it signs RS256 JWTs whose ``x5c`` chain the registry checks against the
certificate passed to it as ``rootcertbundle``. Images are pushed with the testing kit's
`model_engine_infra.testing.images.ImagePusher`, independent of the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE = "test-registry"
ISSUER = "test-token-issuer"


class TokenServer:
    """Docker token server + ACR exchange, in a thread; counts what it was asked."""

    def __init__(self, folder: Path, users: Mapping[str, str], aad_tokens: set[str], expires_in: int = 300) -> None:
        self.users = dict(users)
        self.aad_tokens = aad_tokens
        self.expires_in = expires_in
        self.refresh_tokens: set[str] = set()
        self.token_requests = 0
        self.exchanges = 0
        self.authorizations: list[str] = []  # every Authorization header it received (leak checks)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
        now = dt.datetime.now(dt.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = folder / "token-signer.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.realm = f"{self.url}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def registry_auth(self) -> dict[str, str]:
        return {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(self.cert_path)}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def mint(self, scopes: list[str], subject: str = "test") -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        x5c = [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"x5c": x5c})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _token(self, scopes: list[str], subject: str) -> None:
                server.token_requests += 1
                token = server.mint(scopes, subject)
                self._reply(200, {"token": token, "access_token": token, "expires_in": server.expires_in})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/token":
                    self._reply(404, {})
                    return
                header = self.headers.get("Authorization", "")
                if header:
                    server.authorizations.append(header)
                if not header.startswith("Basic "):
                    self._reply(401, {"details": "anonymous access denied"})
                    return
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if server.users.get(user) != password:
                    self._reply(401, {"details": "bad credentials"})
                    return
                self._token(parse_qs(parts.query).get("scope", []), user)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path == "/oauth2/exchange":
                    if form.get("grant_type") != "access_token" or form.get("access_token") not in server.aad_tokens:
                        self._reply(401, {"details": "bad AAD token"})
                        return
                    server.exchanges += 1
                    refresh = secrets.token_hex(16)
                    server.refresh_tokens.add(refresh)
                    self._reply(200, {"refresh_token": refresh})
                    return
                if self.path == "/token" and form.get("grant_type") == "refresh_token":
                    if form.get("refresh_token") not in server.refresh_tokens:
                        self._reply(401, {"details": "bad refresh token"})
                        return
                    self._token((form.get("scope") or "").split(), "acr-user")
                    return
                self._reply(400, {"details": "unsupported"})

        return Handler
