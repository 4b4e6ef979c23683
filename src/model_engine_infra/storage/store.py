"""`Store`: what one URI scheme's backend supplies — its files and its model artifacts.

A ``store`` backend (registered by URI scheme, see `model_engine_infra.registry`) is a callable
``(config: InfraConfig) -> Store``; `infra.filesystem` and `infra.artifacts` build each scheme's
store once, on first use, and send every URI to the store of its scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import FilesystemGateway, LLMArtifactGateway


@dataclass
class Store:
    filesystem: FilesystemGateway
    artifacts: LLMArtifactGateway

    def close(self) -> None:
        """Close both (artifacts first: it may share the filesystem's client)."""
        try:
            self.artifacts.close()
        finally:
            self.filesystem.close()
