"""A GCP service-account key file made on the spot, for the integration tests that sign GCS V4 URLs.

V4 URLs are signed offline with the key's private half; the emulator (fake-gcs-server) does not check
the signature, so any freshly generated RSA key will do. Imported by name, like ``registry_fakes``.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_service_account_key(path: Path, *, project_id: str = "test") -> Path:
    """Write a new service-account key for ``project_id`` to ``path`` and return ``path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": f"signer@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return path
