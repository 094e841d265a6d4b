"""A lockstep server as a push and pull remote (``lockstep remote add team
http://host:5000``): objects through its object routes, documents through its document
routes; a push's documents are imported by the server when the push ends."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from lockstep.errors import RemoteError


class ServerRemote:
    """The Remote interface over a server's project."""

    def __init__(self, url: str, token: str | None = None, project: str = "default") -> None:
        from lockstep.remote.meta import HttpMetaStore

        self.url = url.rstrip("/")
        self._store = HttpMetaStore(self.url, token, project=project)
        self.objects = self._store.objects
        self._session = secrets.token_hex(16)  # this push's staged documents

    @classmethod
    def from_environment(cls, url: str) -> ServerRemote:
        """The token and project from LOCKSTEP_TOKEN / LOCKSTEP_PROJECT, or `lockstep
        login`'s for this URL."""
        from lockstep import credentials

        entry = credentials.read().get("servers", {}).get(url.rstrip("/"), {})
        return cls(
            url,
            os.environ.get("LOCKSTEP_TOKEN") or entry.get("token"),
            os.environ.get("LOCKSTEP_PROJECT") or entry.get("project") or "default",
        )

    def list_objects(self) -> set[str]:
        raise RemoteError(f"{self.url} answers which objects it lacks, it does not list them")

    def missing(self, digests: list[str]) -> list[str]:
        return self.objects.missing(digests)

    def upload(self, digest: str, source: Path) -> None:
        self.objects.upload(digest, source)

    def download(self, digest: str, target: Path) -> None:
        self.objects.download(digest, target)

    def list_meta(self, prefix: str) -> list[str]:
        return [str(n) for n in self._store._request("GET", f"/documents/{prefix}")["names"]]

    def read_meta(self, name: str) -> bytes:
        return self._store._raw("GET", f"/documents/{name}")

    def write_meta(self, name: str, data: bytes) -> None:
        self._store._raw("PUT", f"/documents/{name}", content=data, session=self._session)

    def finish(self) -> list[str]:
        """Have the server import this push's documents; its conflicts."""
        answer: dict[str, Any] = self._store._request(
            "POST", "/documents/import", params={"session": self._session}
        )
        self._session = secrets.token_hex(16)
        return [str(c) for c in answer["conflicts"]]
