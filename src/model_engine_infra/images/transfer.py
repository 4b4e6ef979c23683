"""The copy engine behind `mirror`: streamed, digest-checked, skipping and mounting blobs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ..errors import ImageNotFoundError, RegistryError
from .distribution import RegistryClient, pull_scope, push_scope
from .oci import Manifest, checked_digest, fetch_manifest, head_manifest_digest
from .progress import Event, MirrorProgress, MirrorResult, ProgressCallback

CHUNK = 1 << 20
# Layers that may not be redistributed (Windows base layers) are fetched from their own URLs.
NON_DISTRIBUTABLE = ("nondistributable", "foreign")


class Copier:
    """Copies images from one registry client to another; one instance per mirror run."""

    def __init__(
        self,
        src: RegistryClient,
        dst: RegistryClient,
        progress: ProgressCallback | None,
        concurrency: int,
        prepare_target: Callable[[str], None] | None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.same_registry = src is dst or src.base_url == dst.base_url
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mirror")
        self.prepare_target = prepare_target
        self.prepared: set[str] = set()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _emit(self, image: str, event: Event, digest: str, size: int = 0, transferred: int = 0) -> None:
        if self.progress is not None:
            self.progress(MirrorProgress(image, event, digest, size, transferred))

    def copy(self, src_repo: str, dst_repo: str, tag: str, label: str) -> MirrorResult:
        result = MirrorResult(source=f"{self.src.host}/{src_repo}:{tag}", target=label)
        # What the target's tag points at is asked while the source manifest is fetched: one round trip, not two.
        target_digest = self.pool.submit(self._prepare_and_head, dst_repo, tag)
        try:
            manifest = fetch_manifest(self.src, src_repo, tag)
        finally:
            current = target_digest.result()
        if manifest is None:
            raise ImageNotFoundError(f"{self.src.host}/{src_repo}:{tag} does not exist at the source")
        result.digest = manifest.digest
        if current == manifest.digest:
            result.up_to_date = True
            self._emit(label, "up_to_date", manifest.digest, len(manifest.body))
            return result
        if manifest.is_index:
            for child in manifest.document.get("manifests") or []:
                digest = checked_digest(child.get("digest") if isinstance(child, dict) else None, self.src.host)
                if head_manifest_digest(self.dst, dst_repo, digest) == digest:
                    continue
                child_manifest = fetch_manifest(self.src, src_repo, digest)
                if child_manifest is None:
                    raise ImageNotFoundError(f"{src_repo}@{digest} (in the index of :{tag}) is missing")
                self._copy_image(child_manifest, src_repo, dst_repo, digest, label, result)
        else:
            self._copy_image(manifest, src_repo, dst_repo, tag, label, result, push=False)
        self._put_manifest(manifest, dst_repo, tag, label, result)
        return result

    def _prepare_and_head(self, dst_repo: str, tag: str) -> str | None:
        if self.prepare_target is not None and dst_repo not in self.prepared:
            self.prepare_target(dst_repo)
            self.prepared.add(dst_repo)
        return head_manifest_digest(self.dst, dst_repo, tag)

    def _copy_image(
        self,
        manifest: Manifest,
        src_repo: str,
        dst_repo: str,
        reference: str,
        label: str,
        result: MirrorResult,
        *,
        push: bool = True,
    ) -> None:
        document = manifest.document
        blobs = [document["config"], *(document.get("layers") or [])] if "config" in document else []
        if not all(isinstance(b, dict) for b in blobs):
            raise RegistryError(f"registry {self.src.host} sent a manifest of {src_repo} with malformed descriptors")
        wanted = [b for b in blobs if not any(word in str(b.get("mediaType", "")) for word in NON_DISTRIBUTABLE)]
        unique = list({checked_digest(b.get("digest"), self.src.host): b for b in wanted}.values())
        for future in [self.pool.submit(self._copy_blob, b, src_repo, dst_repo, label, result) for b in unique]:
            future.result()
        if push:
            self._put_manifest(manifest, dst_repo, reference, label, result)

    def _put_manifest(
        self, manifest: Manifest, dst_repo: str, reference: str, label: str, result: MirrorResult
    ) -> None:
        response = self.dst.request(
            "PUT",
            f"/v2/{dst_repo}/manifests/{reference}",
            scopes=[push_scope(dst_repo)],
            headers={"Content-Type": manifest.media_type},
            content=manifest.body,
            what=f"pushing the manifest of {dst_repo}:{reference}",
        )
        _expect(response, (200, 201), self.dst, f"pushing the manifest of {dst_repo}:{reference}")
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != manifest.digest:
            raise RegistryError(
                f"{self.dst.host} stored {dst_repo}:{reference} as {stored}, expected {manifest.digest}"
            )
        result.add(manifests_pushed=1)
        self._emit(label, "manifest_pushed", manifest.digest, len(manifest.body))

    def _blob_exists(self, repository: str, digest: str) -> bool:
        response = self.dst.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scopes=[push_scope(repository)],
            what=f"checking blob {digest} in {repository}",
        )
        if response.status_code in (200, 307):
            return True
        if response.status_code == 404:
            return False
        raise RegistryError(f"{self.dst.host} answered {response.status_code} checking blob {digest}")

    def _copy_blob(
        self, descriptor: dict[str, Any], src_repo: str, dst_repo: str, label: str, result: MirrorResult
    ) -> None:
        digest = checked_digest(descriptor.get("digest") if isinstance(descriptor, dict) else None, self.src.host)
        try:
            size = int(descriptor.get("size") or 0)
        except (TypeError, ValueError):
            raise RegistryError(
                f"registry {self.src.host} sent a descriptor of {digest} with a malformed size"
            ) from None
        if self._blob_exists(dst_repo, digest):
            result.add(blobs_skipped=1)
            self._emit(label, "blob_skipped", digest, size)
            return
        location = self._start_upload(src_repo, dst_repo, digest)
        if location is None:
            result.add(blobs_mounted=1)
            self._emit(label, "blob_mounted", digest, size)
            return
        what = f"copying blob {digest} to {dst_repo}"
        download = self.src.request(
            "GET", f"/v2/{src_repo}/blobs/{digest}", scopes=[pull_scope(src_repo)], stream=True, what=what
        )
        try:
            _expect(download, (200,), self.src, f"reading blob {digest} of {src_repo}")
            body = self._verified(download, digest, size, label, result)
            upload_url = httpx.URL(location).copy_merge_params({"digest": digest})
            headers = {"Content-Type": "application/octet-stream"}
            if size:
                headers["Content-Length"] = str(size)
            response = self.dst.request(
                "PUT", str(upload_url), scopes=[push_scope(dst_repo)], headers=headers, content=body, what=what
            )
            _expect(response, (201, 204), self.dst, what)
        finally:
            download.close()
        result.add(blobs_copied=1)
        self._emit(label, "blob_copied", digest, size)

    def _start_upload(self, src_repo: str, dst_repo: str, digest: str) -> str | None:
        """The upload URL, or None when the blob was mounted from ``src_repo`` in the same registry."""
        params: dict[str, str] = {}
        scopes = [push_scope(dst_repo)]
        if self.same_registry and src_repo != dst_repo:
            params = {"mount": digest, "from": src_repo}
            scopes.append(pull_scope(src_repo))
        response = self.dst.request(
            "POST",
            f"/v2/{dst_repo}/blobs/uploads/",
            scopes=scopes,
            params=params,
            what=f"starting an upload to {dst_repo}",
        )
        if response.status_code == 201 and params:
            return None
        _expect(response, (202,), self.dst, f"starting an upload to {dst_repo}")
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.dst.host} gave no upload location for {dst_repo}")
        return location if location.startswith(("http://", "https://")) else f"{self.dst.base_url}{location}"

    def _verified(
        self, download: httpx.Response, digest: str, size: int, label: str, result: MirrorResult
    ) -> Iterator[bytes]:
        algorithm, _, expected = digest.partition(":")
        if algorithm not in ("sha256", "sha512"):
            raise RegistryError(f"blob {digest} uses an unsupported digest algorithm")
        hasher = hashlib.new(algorithm)
        seen = 0
        for chunk in download.iter_bytes(CHUNK):
            hasher.update(chunk)
            seen += len(chunk)
            result.add(bytes_copied=len(chunk))
            self._emit(label, "bytes", digest, size, len(chunk))
            yield chunk
        if hasher.hexdigest() != expected or (size and seen != size):
            raise RegistryError(
                f"blob {digest} from {self.src.host} arrived with a different digest or size "
                f"({seen} bytes, expected {size}): not pushed"
            )


def _expect(response: httpx.Response, ok: Sequence[int], client: RegistryClient, what: str) -> None:
    if response.status_code not in ok:
        response.read()
        detail = response.text[:200].strip()
        response.close()
        raise RegistryError(f"registry {client.host} answered {response.status_code} while {what}: {detail}")
