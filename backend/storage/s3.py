"""Content-addressed storage on any S3-compatible object store, through boto3.

The bytes of an upload are streamed to the store while they are hashed. A stream that
fits in one part is hashed first and put under its content address (or not at all, when
that object exists). A longer one goes up as a multipart upload under a staging key, is
copied inside the store to its content address unless that object exists, and the
staging object is removed: the backend never holds more than one part in memory.

Code that needs a file path (Blender, the image checks) gets a copy in a local cache
directory; objects never change, so a cached copy is never stale.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from backend.storage.base import PRESIGNED_URL_TTL_S, HashingReader, Storage, StoredObject, object_key

# S3's smallest part (but the last) is 5 MiB; 8 MiB parts keep a 2 GiB scene under 300 parts.
MULTIPART_PART_BYTES = 8 * 1024**2
# CopyObject handles up to 5 GiB in one call; boto3's managed copy goes multipart above this.
SINGLE_COPY_MAX_BYTES = 4 * 1024**3
DOWNLOAD_CHUNK_BYTES = 1024**2
# The local cache of objects handed out as paths is trimmed to this size, oldest use first;
# a copy used within the last CACHE_MIN_AGE_S is kept (a caller may be about to open it).
CACHE_MAX_BYTES = 20 * 1024**3
CACHE_MIN_AGE_S = 600
CACHE_TRIM_INTERVAL_S = 60
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to sign for it."""

    bucket: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    region: str = "us-east-1"
    prefix: str = ""
    # what nodes and artists reach, when it differs from the backend's endpoint (a private network)
    public_endpoint_url: str | None = None
    addressing_style: str = "path"


def _client(settings: S3Settings, endpoint_url: str | None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=settings.secret_access_key or None,
        region_name=settings.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": settings.addressing_style},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            # only what the caller asks for: some S3-compatible servers reject the new defaults
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in MISSING_CODES


class S3Storage(Storage):
    """Objects at ``s3://bucket/PREFIXobjects/ab/abcdef…``; a local cache for paths."""

    kind = "s3"

    def __init__(
        self,
        settings: S3Settings,
        cache_dir: str | os.PathLike[str],
        *,
        cache_max_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = _client(settings, settings.endpoint_url)
        # presigned URLs are signed for the host that will be asked, so sign with the public one
        self._signing_client = (
            _client(settings, settings.public_endpoint_url) if settings.public_endpoint_url else self.client
        )
        self.cache_dir = Path(cache_dir)
        (self.cache_dir / "staging").mkdir(parents=True, exist_ok=True)
        self.cache_max_bytes = cache_max_bytes
        self._last_trim = 0.0

    def key(self, sha256: str) -> str:
        return self.settings.prefix + object_key(sha256)

    # ------------------------------------------------------------------ reads

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as error:
            if _is_missing(error):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int | None:
        head = self._head(sha256)
        return None if head is None else int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"no stored object {sha256}") from error
            raise

    def describe(self, sha256: str) -> StoredObject | None:
        """One ranged GET: the first 16 bytes, and the size from Content-Range."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), Range="bytes=0-15")
        except ClientError as error:
            if _is_missing(error):
                return None
            if error.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
                size = self.size(sha256)
                return None if size is None else StoredObject(sha256, size, False, b"")
            raise
        with answer["Body"] as body:
            first_bytes = body.read()
        content_range = answer.get("ContentRange") or ""
        size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(first_bytes)
        return StoredObject(sha256, size, False, first_bytes)

    def path_for(self, sha256: str) -> Path:
        """The cached copy, downloaded first if needed; a path to nothing when the object
        is not stored (as the local directory answers)."""
        cached = self.cache_dir / object_key(sha256)
        if cached.is_file():
            os.utime(cached)  # the trim removes the least recently used first
            return cached
        self.trim_cache()
        fd, staging_name = tempfile.mkstemp(dir=self.cache_dir / "staging")
        try:
            with os.fdopen(fd, "wb") as staged, self.open(sha256) as body:
                while chunk := body.read(DOWNLOAD_CHUNK_BYTES):
                    staged.write(chunk)
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging_name, cached)
        except FileNotFoundError:
            pass
        finally:
            with suppress(FileNotFoundError):
                os.unlink(staging_name)
        return cached

    def trim_cache(self, *, force: bool = False) -> None:
        """Remove cached copies, least recently used first, until the cache fits its size
        (at most once a minute per process: it walks the cache)."""
        now = time.time()
        if not force and now - self._last_trim < CACHE_TRIM_INTERVAL_S:
            return
        self._last_trim = now
        entries = []
        for path in (self.cache_dir / "objects").glob("*/*"):
            with suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for mtime, size, path in sorted(entries):
            if total <= self.cache_max_bytes or now - mtime < CACHE_MIN_AGE_S:
                break
            path.unlink(missing_ok=True)
            total -= size

    @contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        """A private temporary copy, removed after the block (keeps the cache from growing)."""
        cached = self.cache_dir / object_key(sha256)
        if cached.is_file():
            yield cached
            return
        with tempfile.TemporaryDirectory(dir=self.cache_dir / "staging") as folder:
            path = Path(folder) / sha256
            with path.open("wb") as out, self.open(sha256) as body:
                while chunk := body.read(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
            yield path

    # ----------------------------------------------------------------- writes

    def save_stream(self, stream: BinaryIO, max_bytes: int) -> StoredObject:
        reader = HashingReader(stream, max_bytes)
        chunks = reader.chunks()
        first_part = _take(chunks, MULTIPART_PART_BYTES)
        if len(first_part) < MULTIPART_PART_BYTES:
            # the whole stream fit in one part: its address is known before anything is written
            sha256 = reader.sha256
            newly_stored = not self.exists(sha256)
            if newly_stored:
                self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=first_part)
            return StoredObject(sha256, reader.size, newly_stored, reader.first_bytes)
        staging_key = f"{self.settings.prefix}staging/{uuid.uuid4().hex}"
        self._multipart_upload(staging_key, first_part, chunks)
        try:
            sha256 = reader.sha256
            newly_stored = not self.exists(sha256)
            if newly_stored:
                self.client.copy(
                    {"Bucket": self.bucket, "Key": staging_key},
                    self.bucket,
                    self.key(sha256),
                    Config=TransferConfig(
                        multipart_threshold=SINGLE_COPY_MAX_BYTES,
                        multipart_chunksize=MULTIPART_PART_BYTES * 8,
                    ),
                )
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=staging_key)
        return StoredObject(sha256, reader.size, newly_stored, reader.first_bytes)

    def _multipart_upload(self, key: str, first_part: bytes, chunks: Iterator[bytes]) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            part = first_part
            while part:
                number = len(parts) + 1
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                part = _take(chunks, MULTIPART_PART_BYTES)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # too large, a broken client, a store error: leave no parts behind
            with suppress(ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        (self.cache_dir / object_key(sha256)).unlink(missing_ok=True)

    # ------------------------------------------------------- presigned URLs

    def presigned_get_url(
        self,
        sha256: str,
        *,
        expires_s: int = PRESIGNED_URL_TTL_S,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if download_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self._signing_client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)

    def presigned_put_url(
        self, sha256: str, size_bytes: int, *, expires_s: int = PRESIGNED_URL_TTL_S
    ) -> str | None:
        """Signed with the length and the sha256 checksum: the store refuses other bytes.

        The uploader must send ``Content-Length`` and ``x-amz-checksum-sha256`` (the
        base64 of the digest; see ``checksum_header``) exactly as signed.
        """
        params = {
            "Bucket": self.bucket,
            "Key": self.key(sha256),
            "ContentLength": size_bytes,
            "ChecksumSHA256": checksum_header(sha256),
        }
        return self._signing_client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)

    # ------------------------------------------------------------------ health

    def check(self) -> str:
        self.client.head_bucket(Bucket=self.bucket)
        return f"s3 bucket {self.bucket} at {self.settings.endpoint_url or 'AWS'}"


def checksum_header(sha256: str) -> str:
    """The ``x-amz-checksum-sha256`` value of an object: its digest in base64."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


def _take(chunks: Iterator[bytes], size: int) -> bytes:
    """Up to ``size`` bytes from the chunk iterator (less only at the end of the stream)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size:
            break
    return bytes(buffer)
