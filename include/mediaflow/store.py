"""Where objects live: bucket names, deterministic keys, and the storage interface the flows use.

The flows talk to a `Store` (list, download, upload, copy, delete); the Airflow side passes one built on
S3Hook, so this library stays free of Airflow and runs against any S3 API.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

DELIVERIES = "deliveries"
# Cache-Control of published objects: a version's objects never change bytes (content-addressed), so caches may
# keep them for a year; the switch points (the master playlist, the default poster) change, so caches re-ask often
IMMUTABLE = "public, max-age=31536000, immutable"
SWITCH = "public, max-age=60"
DEFAULT_RETRY_BUDGET_S = 60.0
# S3's own codes for "try again": throttling and server trouble, never a missing key or a refused request
RETRYABLE_CODES = {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                   "Throttling", "ThrottlingException", "503", "500", "502", "504"}  # fmt: skip
T = TypeVar("T")
log = logging.getLogger(__name__)


class StorageUnavailable(RuntimeError):
    """The object store did not answer within the retry budget: infrastructure trouble, never bad input. The
    task fails (Airflow retries it); a title that failed resumes when its task is cleared."""


@dataclass(frozen=True)
class Buckets:
    landing: str
    work: str
    distribution: str
    quarantine: str
    reports: str

    @classmethod
    def from_env(cls) -> Buckets:
        """MEDIAFLOW_BUCKET_<ROLE> overrides one bucket; MEDIAFLOW_BUCKET_PREFIX (default 'mediaflow') the rest."""
        prefix = os.environ.get("MEDIAFLOW_BUCKET_PREFIX", "mediaflow")
        return cls(
            **{role: os.environ.get(f"MEDIAFLOW_BUCKET_{role.upper()}", f"{prefix}-{role}") for role in cls.roles()}
        )

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
    # cache_control: the object's Cache-Control header (published objects: IMMUTABLE or SWITCH); None: none set
    def put_bytes(self, data: bytes, bucket: str, key: str, *, cache_control: str | None = None) -> None: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             cache_control: str | None = None) -> None: ...  # fmt: skip
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


def version_prefix(channel: str, asset_id: str, version: str | None) -> str:
    """Where a published version's objects live: <channel>/<asset_id>/<version>/ (the title's folder itself for
    a publish recorded before versions existed: version None)."""
    return distribution_prefix(channel, asset_id) + (f"{version}/" if version else "")


def quarantine_prefix(delivery_id: str) -> str:
    return f"{DELIVERIES}/{delivery_id}/"


def outcome_key(dag_id: str, run: str) -> str:
    return f"outcomes/{dag_id}/{run_key(run)}.json"


def published_state_key(asset_id: str) -> str:
    return f"published/{asset_id}.json"


def read_json(store: Store, bucket: str, key: str):
    """A JSON document we wrote, or None when there is none (yet)."""
    if key not in store.list(bucket, key):
        return None
    return json.loads(store.get_bytes(bucket, key))


def published_state(store: Store, buckets: Buckets, asset_id: str) -> dict | None:
    """What is live for an asset (renditions, locales, channels, default poster), as the last publish recorded it."""
    return read_json(store, buckets.reports, published_state_key(asset_id))


# ---------------------------------------------------------------- retries
def retry_budget_s() -> float:
    """How long one storage call keeps retrying (MEDIAFLOW_S3_RETRY_BUDGET_S, default 60 s) before it fails."""
    return float(os.environ.get("MEDIAFLOW_S3_RETRY_BUDGET_S") or DEFAULT_RETRY_BUDGET_S)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the endpoint unreachable, a connection cut or timed out, throttling, a 5xx. Not: a missing
    key, access denied, a bad request (retrying those only delays the real error)."""
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, (BotoConnectionError, HTTPClientError, RetriesExceededError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, S3UploadFailedError):  # boto3's transfer wraps the ClientError it got
        return exc.__cause__ is not None and is_transient(exc.__cause__) or "(SlowDown)" in str(exc)
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return str(err.get("Code")) in RETRYABLE_CODES or status >= 500
    return False


def transfer_workers() -> int:
    """Objects moved at once by one task (MEDIAFLOW_S3_TRANSFERS, default 8): a title's hundreds of segments are
    latency-bound, not CPU-bound, on a real S3 API."""
    value = os.environ.get("MEDIAFLOW_S3_TRANSFERS", "8")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"MEDIAFLOW_S3_TRANSFERS={value!r}: must be a whole number of at least 1") from None
    if n < 1:
        raise ValueError(f"MEDIAFLOW_S3_TRANSFERS={value!r}: must be a whole number of at least 1")
    return n


MULTIPART_BYTES = 16 * 2**20


def transfer_config():
    """How one file moves (boto3 upload_file / download_file): files from 16 MB (sources, mezzanines) in 16-MB
    parts, 4 parts at once (ranged GETs down); smaller ones (segments, playlists) in one request. A 10-GB
    file is 640 parts, far below S3's 10,000. Many files at once is `each`'s job (transfer_workers)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, max_concurrency=4)


def each(call: Callable[[T], object], items: list[T], *, workers: int | None = None) -> None:
    """call(item) for every item, up to `workers` at once; every call is made, then the first error is raised.
    The first item goes alone, so a store that builds its client lazily builds it once."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    if not items:
        return
    call(items[0])
    errors: list[BaseException] = []

    def guarded(item: T) -> None:
        try:
            call(item)
        except BaseException as e:  # noqa: BLE001 - raised below, after the other transfers ended
            errors.append(e)

    with ThreadPoolExecutor(max_workers=min(workers or transfer_workers(), len(items))) as pool:
        list(pool.map(guarded, items[1:]))
    if errors:
        raise errors[0]


def with_retries(call: Callable[[], T], what: str, *, budget_s: float | None = None, sleep=None) -> T:
    """`call()`, retried on transient storage errors with exponential backoff and full jitter (tenacity's
    wait_random_exponential: a random wait up to 0.5 s x 2^attempt, at most 8 s) for `budget_s`; then
    StorageUnavailable naming `what` and the last error. Every storage call is idempotent (deterministic keys,
    whole-object writes), so a retry never duplicates an object."""
    import tenacity

    budget = retry_budget_s() if budget_s is None else budget_s

    def tell(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        log.warning("storage: %s failed (%s: %s); retry %d in %.1f s (%.0f of %.0f s budget used)", what,
                    type(exc).__name__, _short(exc), state.attempt_number, state.upcoming_sleep,
                    state.seconds_since_start, budget)  # fmt: skip

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=8),
        stop=tenacity.stop_after_delay(budget),
        before_sleep=tell,
        reraise=True,
        **({"sleep": sleep} if sleep else {}),
    )
    try:
        return retrying(call)
    except Exception as e:
        if not is_transient(e):
            raise
        raise StorageUnavailable(
            f"object storage unavailable: {what} still failing after {budget:.0f} s of retries "
            f"({type(e).__name__}: {_short(e)})"
        ) from e


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
