"""Where objects live: bucket names, deterministic keys, and the storage interface the flows use.

The flows talk to a `Store` (list, download, upload, copy, delete); the Airflow side passes one built on
S3Hook, so this library stays free of Airflow and runs against any S3 API.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol

DELIVERIES = "deliveries"


@dataclass(frozen=True)
class Buckets:
    landing: str
    work: str
    distribution: str
    quarantine: str
    reports: str

    @classmethod
    def from_env(cls) -> "Buckets":
        """MEDIAFLOW_BUCKET_<ROLE> overrides one bucket; MEDIAFLOW_BUCKET_PREFIX (default 'mediaflow') the rest."""
        prefix = os.environ.get("MEDIAFLOW_BUCKET_PREFIX", "mediaflow")
        return cls(**{role: os.environ.get(f"MEDIAFLOW_BUCKET_{role.upper()}", f"{prefix}-{role}") for role in cls.roles()})

    @staticmethod
    def roles() -> tuple[str, ...]:
        return ("landing", "work", "distribution", "quarantine", "reports")

    def all(self) -> list[str]:
        return [getattr(self, role) for role in self.roles()]


class Store(Protocol):
    def list(self, bucket: str, prefix: str) -> dict[str, dict]: ...  # key -> {size, etag, last_modified}
    def list_folders(self, bucket: str, prefix: str) -> list[str]: ...  # the "sub-folder" prefixes under prefix
    def download(self, bucket: str, key: str, path: str) -> None: ...
    def upload(self, path: str, bucket: str, key: str) -> None: ...
    def put_bytes(self, data: bytes, bucket: str, key: str) -> None: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None: ...
    def delete(self, bucket: str, keys: list[str]) -> None: ...


def run_key(run_id: str) -> str:
    """A DAG run id made safe for object keys and folder names (run ids carry ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if not m:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return m.group(1), m.group(2)


def delivery_location(ref: str, buckets: Buckets) -> tuple[str, str, str]:
    """A delivery id or an s3:// prefix -> (bucket, prefix ending in '/', delivery id)."""
    ref = (ref or "").strip()
    if ref.startswith("s3://"):
        bucket, prefix = parse_s3_uri(ref)
        prefix = prefix.rstrip("/")
        delivery_id = prefix.rsplit("/", 1)[-1] if prefix else ""
        prefix = f"{prefix}/" if prefix else ""
    else:
        bucket, delivery_id = buckets.landing, ref
        prefix = f"{DELIVERIES}/{delivery_id}/"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", delivery_id or "") or ".." in delivery_id:
        raise ValueError(
            f"delivery {ref!r}: a delivery id (letters, digits, . _ -) or an s3://bucket/prefix/ URI ending in one"
        )
    return bucket, prefix, delivery_id


def work_prefix(asset_id: str, run: str) -> str:
    return f"{asset_id}/{run_key(run)}/"


def distribution_prefix(channel: str, asset_id: str) -> str:
    return f"{channel}/{asset_id}/"


def quarantine_prefix(delivery_id: str) -> str:
    return f"{DELIVERIES}/{delivery_id}/"


def outcome_key(dag_id: str, run: str) -> str:
    return f"outcomes/{dag_id}/{run_key(run)}.json"


def published_state_key(asset_id: str) -> str:
    return f"published/{asset_id}.json"
