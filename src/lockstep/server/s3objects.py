"""A project's objects on S3 (``lockstep server --objects s3://bucket/prefix``): clients
upload and download through presigned URLs, so object bytes never pass through the
server on their way in or out.

An upload is an S3 multipart upload to a staging key, resumable part by part (the parts
S3 already holds are skipped). When the client says it is complete, the server reads the
staged object once and hashes it: only bytes that hash to the digest are copied to the
object's key, where clients can see it. That read is the price of the digest check; S3
cannot compute BLAKE3 itself.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lockstep.errors import ObjectMissing, UsageError
from lockstep.objects.remote import S3Remote, _object_key
from lockstep.objects.store import LocalObjectStore

_PART = 8 << 20  # S3 wants parts of 5 MiB or more (but the last), and at most 10,000
_EXPIRES = 3600


def _part_length(number: int, part_size: int, size: int) -> int:
    return min(part_size, size - (number - 1) * part_size)


class S3Objects(LocalObjectStore):
    """Objects in a bucket, with a local cache (root) of those the server reads itself
    (manifests, while importing a push)."""

    def __init__(self, cache_root: Path, url: str, endpoint_url: str | None) -> None:
        super().__init__(cache_root)
        self.remote = S3Remote(url, endpoint_url)
        self.url = url

    def _key(self, digest: str) -> str:
        return self.remote._key(_object_key(digest))

    def _staging(self, digest: str) -> str:
        return self.remote._key(f"uploads/{digest}")

    def in_bucket(self, digest: str) -> bool:
        import botocore.exceptions as boto

        self.path(digest)  # a malformed digest is refused before any request
        try:
            self.remote.client.head_object(Bucket=self.remote.bucket, Key=self._key(digest))
            return True
        except boto.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            with self.remote._errors():
                raise

    def has(self, digest: str) -> bool:
        return super().has(digest) or self.in_bucket(digest)

    def missing(self, digests: list[str]) -> list[str]:
        with ThreadPoolExecutor(16) as pool:
            held = list(pool.map(self.in_bucket, digests))
        return [d for d, h in zip(digests, held, strict=True) if not h]

    def _cached(self, digest: str) -> None:
        if not super().has(digest):
            if not self.in_bucket(digest):
                raise ObjectMissing(digest)
            super().put_fetched(digest, lambda tmp: self.remote.download(digest, Path(tmp)))

    def open(self, digest: str) -> Any:
        self._cached(digest)
        return super().open(digest)

    def link(self, digest: str, target: str | Path, strategies: tuple[str, ...], **kw: Any) -> str:
        self._cached(digest)
        return super().link(digest, target, strategies, **kw)

    def put_fetched(self, digest: str, fetch: Any) -> None:
        super().put_fetched(digest, fetch)  # checked against the digest here
        if not self.in_bucket(digest):
            self.remote.upload(digest, self.path(digest))

    # presigned transfers ----------------------------------------------------

    def download_url(self, digest: str) -> str:
        if not self.in_bucket(digest):
            raise ObjectMissing(digest)
        return str(
            self.remote.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.remote.bucket, "Key": self._key(digest)},
                ExpiresIn=_EXPIRES,
            )
        )

    def upload_plan(self, digest: str, size: int) -> dict[str, Any]:
        """The parts to send for an upload of size bytes: presigned URLs for each, and the
        parts an interrupted upload of this digest already left (skip those)."""
        client, bucket = self.remote.client, self.remote.bucket
        if self.in_bucket(digest):
            return {"stored": True}
        if size == 0:
            from blake3 import blake3

            if str(blake3(b"").hexdigest()) != digest:
                raise UsageError("an empty upload hashes to the empty digest only")
            with self.remote._errors():
                client.put_object(Bucket=bucket, Key=self._key(digest), Body=b"")
            return {"stored": True}
        part_size = max(_PART, math.ceil(size / 10_000))
        staging = self._staging(digest)
        with self.remote._errors():
            found = client.list_multipart_uploads(Bucket=bucket, Prefix=staging)
            uploads = [u for u in found.get("Uploads", []) if u["Key"] == staging]
            if uploads:
                upload_id = uploads[-1]["UploadId"]
                listed = client.list_parts(Bucket=bucket, Key=staging, UploadId=upload_id)
                done = {
                    int(p["PartNumber"]): p["ETag"]
                    for p in listed.get("Parts", [])
                    if int(p["Size"])
                    == min(part_size, size - (int(p["PartNumber"]) - 1) * part_size)
                }
            else:
                upload_id = client.create_multipart_upload(Bucket=bucket, Key=staging)["UploadId"]
                done = {}
            count = math.ceil(size / part_size)
            parts = [
                {
                    "number": n,
                    "url": client.generate_presigned_url(
                        "upload_part",
                        Params={
                            "Bucket": bucket,
                            "Key": staging,
                            "UploadId": upload_id,
                            "PartNumber": n,
                        },
                        ExpiresIn=_EXPIRES,
                    ),
                }
                for n in range(1, count + 1)
                if n not in done
            ]
        return {
            "stored": False,
            "direct": {
                "upload_id": upload_id,
                "part_size": part_size,
                "parts": parts,
                "done": [[n, etag] for n, etag in sorted(done.items())],
            },
        }

    def complete(self, digest: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Finish the multipart upload, hash what S3 holds, and make it visible only if it
        is the digest's content."""
        from blake3 import blake3

        client, bucket = self.remote.client, self.remote.bucket
        staging = self._staging(digest)
        with self.remote._errors():
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=staging,
                UploadId=str(upload_id),
                MultipartUpload={
                    "Parts": [{"PartNumber": int(n), "ETag": str(e)} for n, e in sorted(parts)]
                },
            )
            hasher = blake3()
            body = client.get_object(Bucket=bucket, Key=staging)["Body"]
            for piece in iter(lambda: body.read(1 << 20), b""):
                hasher.update(piece)
            actual = str(hasher.hexdigest())
            if actual != digest:
                client.delete_object(Bucket=bucket, Key=staging)
                raise UsageError(
                    f"the uploaded bytes hash to {actual}, not {digest}: nothing was stored"
                )
            client.copy({"Bucket": bucket, "Key": staging}, bucket, self._key(digest))
            client.delete_object(Bucket=bucket, Key=staging)
