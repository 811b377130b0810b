"""TEST CODE ONLY: lets fakesnow's DuckDB read `s3://` stages from a moto server.

fakesnow turns `COPY INTO ... FROM @stage` into `read_parquet('s3://bucket/key')`, and DuckDB 2.0
has no httpfs here (it cannot be downloaded; the PyPI build crashes on 2.0). DuckDB accepts any
fsspec filesystem through `register_filesystem`, so this small read-only one over a boto3 client
(pointed at moto) stands in for it. Production Snowflake reads S3 through a storage integration
and never sees this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem


class BotoS3FileSystem(AbstractFileSystem):
    """Read-only `s3://bucket/key` access through one boto3 S3 client: info, ls, open."""

    protocol = ("s3", "s3a")
    cachable = False  # one instance per client; fsspec's instance cache would mix clients

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        for scheme in ("s3://", "s3a://"):
            if path.startswith(scheme):
                path = path[len(scheme) :]
        bucket, _, key = path.partition("/")
        return bucket, key

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key = self._split(path)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore ClientError 404: report like a filesystem
            raise FileNotFoundError(path) from exc
        return {
            "name": f"{bucket}/{key}",
            "size": head["ContentLength"],
            "type": "file",
            "LastModified": head["LastModified"],
        }

    def modified(self, path: str) -> datetime:
        """DuckDB asks for it (its file cache) before reading."""
        return self.info(path)["LastModified"]

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        bucket, prefix = self._split(path)
        prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        out: list[dict[str, Any]] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                out.append({"name": f"{bucket}/{obj['Key']}", "size": obj["Size"], "type": "file"})
            for sub in page.get("CommonPrefixes", []):
                out.append(
                    {
                        "name": f"{bucket}/{sub['Prefix'].rstrip('/')}",
                        "size": 0,
                        "type": "directory",
                    }
                )
        return out if detail else [o["name"] for o in out]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> _BotoS3File:
        if mode != "rb":
            raise PermissionError("the test S3 bridge is read-only")
        return _BotoS3File(self, path, mode, **kwargs)


class _BotoS3File(AbstractBufferedFile):
    """Ranged GETs on demand, so DuckDB reads a Parquet footer without fetching the file."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        bucket, key = BotoS3FileSystem._split(self.path)
        resp = self.fs.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return resp["Body"].read()
