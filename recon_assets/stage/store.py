"""Where staged files live: a local folder by default, an S3 prefix in production.

Both stores publish a file atomically: a reader (the warehouse COPY, a re-run) sees the whole
file or nothing. Locally that is write-to-temp then `os.replace`; on S3 it is a multipart upload,
which creates no object until it is completed and leaves none when aborted. Writes stream: the
S3 writer holds one part (8 MiB) in memory, never the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class StageStore(ABC):
    """A flat key space of files below one root (a folder or `s3://bucket/prefix`)."""

    root_uri: str

    @abstractmethod
    def uri(self, key: str) -> str:
        """The address a warehouse or a person uses for `key`."""

    @abstractmethod
    @contextmanager
    def open_atomic(self, key: str) -> Iterator[IO[bytes]]:
        """Write `key`; it becomes visible only if the block exits without an exception."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Published keys below `prefix`, sorted."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...


class LocalStageStore(StageStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root_uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self.path(key))

    @contextmanager
    def open_atomic(self, key: str) -> Iterator[IO[bytes]]:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Dot-prefixed and not *.parquet, so no glob of published files ever matches it.
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Remove the temp files of writes that never finished (a run killed with -9): they
        are never published, so only their age says they are abandoned. S3 needs no such pass:
        an unfinished multipart upload is aborted by the bucket's lifecycle rule."""
        if not self.root.exists():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for p in self.root.rglob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()


class _S3MultipartWriter(io.RawIOBase):
    """A write-only file that streams to S3 in parts and publishes on `complete()` only."""

    PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB for every part but the last

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def write(self, b: Any) -> int:
        data = memoryview(b).cast("B")
        self._buf += data
        self._pos += len(data)
        while len(self._buf) >= self.PART_SIZE:
            self._upload_part(bytes(self._buf[: self.PART_SIZE]))
            del self._buf[: self.PART_SIZE]
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            resp = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = resp["UploadId"]
        number = len(self._parts) + 1
        resp = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def complete(self) -> None:
        if self._upload_id is None:  # small file: one PUT is atomic too
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buf))
        else:
            if self._buf:
                self._upload_part(bytes(self._buf))
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buf = bytearray()

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        self._buf = bytearray()


class S3StageStore(StageStore):
    """The production stage. `client` is a boto3 S3 client (from dagster-aws `S3Resource`)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @contextmanager
    def open_atomic(self, key: str) -> Iterator[IO[bytes]]:
        writer = _S3MultipartWriter(self.client, self.bucket, self._key(key))
        try:
            yield writer  # type: ignore[misc]
        except BaseException:
            writer.abort()
            raise
        writer.complete()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                keys.append(k[len(self.prefix) + 1 :] if self.prefix else k)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, prefix.strip("/")


def stage_store_from_uri(uri: str, s3_client: Any | None = None) -> StageStore:
    """A folder path gives a local store; `s3://bucket/prefix` needs a boto3 client."""
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError("an s3:// stage needs an S3 client (S3Resource)")
        bucket, prefix = parse_s3_uri(uri)
        return S3StageStore(s3_client, bucket, prefix)
    return LocalStageStore(uri)
