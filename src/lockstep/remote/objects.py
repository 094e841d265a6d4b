"""Objects on a lockstep server: existence of many digests in one call, resumable uploads
and downloads, and a local object store that fetches from the server what it lacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from lockstep.errors import ObjectMissing, RemoteError, ServerUnreachable
from lockstep.objects.store import LocalObjectStore

if TYPE_CHECKING:
    import httpx

_BATCH = 10_000  # digests per existence check
_ATTEMPTS = 5
_PIECE = 1 << 20


class ServerObjects:
    """One project's objects on a server, through an authenticated client."""

    def __init__(self, client: httpx.Client, api: str, url: str) -> None:
        self._client = client
        self._api = api  # /api/v1/projects/NAME
        self.url = url

    def _call(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        from lockstep.remote.wire import retrying

        return cast("httpx.Response", retrying(send, self.url, _ATTEMPTS))

    def _fail(self, response: httpx.Response, what: str) -> RemoteError:
        try:
            reason = str(response.json().get("error", ""))
        except ValueError:
            reason = response.text[:200]
        return RemoteError(
            f"the lockstep server at {self.url} refused {what} ({response.status_code}): {reason}"
        )

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those of digests the server does not hold."""
        wanted = sorted(set(digests))
        absent: list[str] = []
        for start in range(0, len(wanted), _BATCH):
            part = wanted[start : start + _BATCH]

            def check(part: list[str] = part) -> httpx.Response:
                return self._client.post(f"{self._api}/objects/missing", json={"digests": part})

            response = self._call(check)
            if response.status_code != 200:
                raise self._fail(response, "an existence check")
            absent.extend(response.json()["missing"])
        return absent

    def upload(self, digest: str, source: Path) -> None:
        """Send source as object digest, resuming from what an earlier attempt left on the
        server; the server stores it only if the bytes hash to digest."""
        import httpx

        size = source.stat().st_size
        restarted = False
        for attempt in range(_ATTEMPTS * 2):
            state = self._call(
                lambda: self._client.get(
                    f"{self._api}/objects/{digest}/upload", params={"size": size}
                )
            )
            if state.status_code != 200:
                raise self._fail(state, f"the upload of {digest[:16]}")
            found = state.json()
            if found["stored"]:
                return
            if "direct" in found:  # the server keeps objects on S3: send them there
                self._upload_direct(digest, source, found["direct"])
                return
            first = int(found["received"]) if int(found["received"]) < size else 0
            headers = {"content-type": "application/octet-stream"}
            if size:
                headers["content-range"] = f"bytes {first}-{size - 1}/{size}"
            try:
                with open(source, "rb") as handle:
                    handle.seek(first)
                    response = self._client.put(
                        f"{self._api}/objects/{digest}",
                        content=_pieces(handle),
                        headers=headers,
                    )
            except httpx.TransportError:
                time.sleep(0.2 * (attempt + 1))
                continue  # resume from what arrived
            if response.status_code in (200, 201):
                return
            if response.status_code in (202, 409):
                continue
            if response.status_code == 400 and not restarted:
                restarted = True  # a stale partial upload: the server dropped it, start over
                continue
            raise self._fail(response, f"the upload of {digest[:16]}")
        raise RemoteError(f"the upload of {digest[:16]} to {self.url} did not complete; retry")

    def _upload_direct(self, digest: str, source: Path, plan: dict[str, Any]) -> None:
        """Send the parts still missing to their presigned URLs (never with the server's
        token), then have the server check the whole and make it visible."""
        import httpx

        part_size = int(plan["part_size"])
        etags = {int(n): str(e) for n, e in plan["done"]}
        with httpx.Client(timeout=self._client.timeout) as direct, open(source, "rb") as handle:
            for part in plan["parts"]:
                number = int(part["number"])
                handle.seek((number - 1) * part_size)
                piece = handle.read(part_size)
                url = str(part["url"])

                def put(url: str = url, piece: bytes = piece) -> httpx.Response:
                    return direct.put(url, content=piece)

                sent = self._call(put)
                if sent.status_code != 200:
                    raise RemoteError(
                        f"the object store refused part {number} of {digest[:16]} "
                        f"({sent.status_code}): {sent.text[:200]}"
                    )
                etags[number] = sent.headers["etag"]
        done = self._call(
            lambda: self._client.post(
                f"{self._api}/objects/{digest}/complete",
                json={"upload_id": plan["upload_id"], "parts": sorted(etags.items())},
            )
        )
        if done.status_code not in (200, 201):
            raise self._fail(done, f"the upload of {digest[:16]}")

    def download(self, digest: str, target: Path) -> None:
        """Write object digest to target, resuming with a Range request after a broken
        connection (the caller checks the digest before the object becomes visible)."""
        import httpx

        with open(target, "wb") as handle:
            for attempt in range(_ATTEMPTS):
                have = handle.tell()
                headers = {"range": f"bytes={have}-"} if have else {}
                try:
                    # A server keeping objects on S3 redirects to a presigned URL (httpx
                    # drops the token when the redirect leaves the server).
                    with self._client.stream(
                        "GET",
                        f"{self._api}/objects/{digest}",
                        headers=headers,
                        follow_redirects=True,
                    ) as response:
                        if response.status_code == 404:
                            raise ObjectMissing(digest)
                        if response.status_code not in (200, 206):
                            response.read()
                            raise self._fail(response, f"the download of {digest[:16]}")
                        if response.status_code == 200 and have:
                            handle.seek(0)
                            handle.truncate()
                        for piece in response.iter_bytes(_PIECE):
                            handle.write(piece)
                    return
                except httpx.TransportError:
                    time.sleep(0.2 * (attempt + 1))
        raise ServerUnreachable(f"the download of {digest[:16]} from {self.url} kept failing")


def _pieces(handle: BinaryIO) -> Iterator[bytes]:
    while piece := handle.read(_PIECE):
        yield piece


class ServerBackedObjects(LocalObjectStore):
    """The local object store of a client of a server: an object missing here is fetched
    from the server (checked against its digest) when something reads it."""

    def __init__(self, root: Path, server: ServerObjects) -> None:
        super().__init__(root)
        self.server = server

    def fetch(self, digest: str) -> bool:
        """Bring digest here from the server; False when the server lacks it too."""
        if self.has(digest):
            return True
        try:
            self.put_fetched(digest, lambda tmp: self.server.download(digest, Path(tmp)))
        except ObjectMissing:
            return False
        return True

    def publish(self, digests: Iterable[str]) -> None:
        """Upload those of digests the server lacks (objects before the records naming
        them, as a push does)."""
        present = [d for d in set(digests) if self.has(d)]
        for digest in self.server.missing(present):
            self.server.upload(digest, self.path(digest))

    def open(self, digest: str) -> BinaryIO:
        self.fetch(digest)
        return super().open(digest)

    def link(self, digest: str, target: str | Path, strategies: tuple[str, ...], **kw: Any) -> str:
        self.fetch(digest)
        return super().link(digest, target, strategies, **kw)
