"""Azure Key Vault as a `SecretStore` (``https://{keyvault_name}.vault.azure.net``), cached with a TTL."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import SecretError, SecretNotFoundError
from .base import CachedSecretStore

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["KeyVaultStore", "build_store", "vault_url"]

_VALID_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")


def vault_url(keyvault_name: str) -> str:
    return f"https://{keyvault_name}.vault.azure.net"


class KeyVaultStore(CachedSecretStore):
    """Reads secrets through an ``azure.keyvault.secrets.SecretClient`` (or a fake with ``get_secret``)."""

    def __init__(self, client: Any, *, keyvault_name: str, ttl_seconds: float = 300.0) -> None:
        super().__init__(ttl_seconds=ttl_seconds)
        self._client = client
        self.store_name = f"Azure Key Vault {keyvault_name!r}"

    def __repr__(self) -> str:
        return f"KeyVaultStore({self.store_name!r})"

    def _fetch(self, name: str) -> str:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        if not _VALID_NAME.match(name):
            raise SecretNotFoundError(
                f"secret {name!r} not found in {self.store_name}: Key Vault names hold only letters, digits "
                "and '-'. Fix: use the vault's name for the secret (e.g. replace '/' and '_' with '-')"
            )
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError as err:
            raise SecretNotFoundError(
                f"secret {name!r} not found in {self.store_name}. Fix: create it or check KEYVAULT_NAME"
            ) from err
        except ClientAuthenticationError as err:
            raise SecretError(
                f"could not authenticate to {self.store_name} to read {name!r}. Fix: check the workload identity"
            ) from err
        except HttpResponseError as err:
            status = getattr(err, "status_code", None)
            if status == 403:
                raise SecretError(
                    f"access to secret {name!r} in {self.store_name} was denied (403). "
                    "Fix: grant the identity 'Key Vault Secrets User' on the vault"
                ) from err
            raise SecretError(f"reading secret {name!r} from {self.store_name} failed (HTTP {status})") from err
        except ServiceRequestError as err:
            raise SecretError(f"{self.store_name} could not be reached to read {name!r}") from err
        except AzureError as err:  # e.g. ServiceResponseError: a read timeout or a dropped connection
            raise SecretError(
                f"{self.store_name} could not be reached to read {name!r} ({type(err).__name__}); retry later"
            ) from err
        if secret.value is None:
            raise SecretNotFoundError(f"secret {name!r} in {self.store_name} has no value")
        return str(secret.value)


def build_store(config: InfraConfig, infra: Infra | None = None) -> KeyVaultStore:
    """The provider factory: one ``SecretClient`` with ``DefaultAzureCredential``."""
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    kwargs = {"managed_identity_client_id": config.azure_client_id} if config.azure_client_id else {}
    client = SecretClient(vault_url=vault_url(config.keyvault_name), credential=DefaultAzureCredential(**kwargs))
    return KeyVaultStore(client, keyvault_name=config.keyvault_name, ttl_seconds=config.secret_cache_ttl_seconds)
