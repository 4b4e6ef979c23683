"""Copy images between registries through the Distribution API: no Docker daemon, no disk.

Replaces the manual ``docker pull / tag / push`` steps: manifests (including multi-platform
indexes) and blobs are streamed from source to target with their digests checked, blobs the target
already has are skipped (``HEAD``), blobs in another repository of the same registry are mounted
instead of copied, and a tag that already points at the source digest is left alone, so a
second run transfers nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .progress import Event, MirrorProgress, MirrorResult, ProgressCallback
from .reference import ACR_HOST, RegistryPrefix, parse_ecr_host, parse_image, parse_prefix

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from .distribution import CredentialSource, RegistryClient

__all__ = ["Event", "MirrorProgress", "MirrorResult", "ProgressCallback", "default_credentials", "mirror"]

#: Blobs copied at once (skopeo's default too): an image's config and layers usually all go together.
DEFAULT_CONCURRENCY = 6


def mirror(
    images: Sequence[str],
    *,
    source: str,
    target: str,
    source_credentials: CredentialSource | None = None,
    target_credentials: CredentialSource | None = None,
    insecure_registries: Sequence[str] = (),
    trusted_auth_hosts: Sequence[str] = (),
    ca_bundle: str | None = None,
    progress: ProgressCallback | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    source_client: RegistryClient | None = None,
    target_client: RegistryClient | None = None,
    prepare_target: Callable[[str], None] | None = None,
) -> list[MirrorResult]:
    """Copy each ``NAME:TAG`` from ``source`` (``REGISTRY[/PREFIX]``) to the same name under ``target``.

    ``prepare_target(repository_path)`` runs before a repository is written (ECR: create it).
    Raises `ImageNotFoundError` for an image missing at the source, `RegistryAuthError` /
    `RegistryUnavailableError` as the clients do, `RegistryError` on a digest mismatch.
    """
    from .distribution import RegistryClient
    from .transfer import Copier

    parsed = [parse_image(image) for image in images]
    src_prefix = parse_prefix(source, key="--from")
    dst_prefix = parse_prefix(target, key="--to")
    owned: list[RegistryClient] = []

    def client_for(prefix: RegistryPrefix, credentials: CredentialSource | None) -> RegistryClient:
        made = RegistryClient(
            prefix.host,
            credentials=credentials,
            insecure_registries=insecure_registries,
            trusted_auth_hosts=trusted_auth_hosts,
            ca_bundle=ca_bundle,
        )
        owned.append(made)
        return made

    src = source_client or client_for(src_prefix, source_credentials)
    if target_client is not None:
        dst = target_client
    elif source_client is None and dst_prefix.host == src_prefix.host and target_credentials is None:
        dst = src  # one registry, one login: blobs can be mounted across repositories
    else:
        dst = client_for(dst_prefix, target_credentials)
    copier = Copier(src, dst, progress, max(1, concurrency), prepare_target)
    try:
        return [
            copier.copy(src_prefix.repository(name), dst_prefix.repository(name), tag, f"{dst_prefix}/{name}:{tag}")
            for name, tag in parsed
        ]
    finally:
        copier.close()
        for client in owned:
            client.close()


def default_credentials(host: str, config: InfraConfig | None = None) -> CredentialSource | None:
    """How to log in to ``host`` without being told: cloud identity for ECR/ACR/GAR, else the config."""
    ecr = parse_ecr_host(host)
    if ecr is not None:
        from .ecr import ECRCredentials, ecr_client

        profile = config.aws_profile if config is not None else None
        endpoint = config.ecr_endpoint_url if config is not None else None
        client = ecr_client(ecr.region, fips=ecr.fips, profile=profile, endpoint_url=endpoint)
        return ECRCredentials(client, ecr.account)
    if ACR_HOST.match(host):
        from azure.identity import DefaultAzureCredential

        from .acr import ACRExchangeCredentials

        return ACRExchangeCredentials(DefaultAzureCredential())
    if host.endswith("-docker.pkg.dev"):
        from .gar import ADCTokenSource, GARCredentials

        return GARCredentials(ADCTokenSource())
    if config is not None:
        from .oci import config_credentials

        return config_credentials(config, host)
    return None
