"""A machine-local copy of a run's work objects, so the tasks of one title on one machine read its source from the
object store once instead of three times (ingest downloads it for its checks; transcode and technical QC read it
again).

Only keys under the work bucket's per-run prefix (`<asset_id>/<run>/`) are kept: they are written once per run and
never change, so a cached copy is the object. The cache is a folder (MEDIAFLOW_CACHE_DIR; unset = no cache, every
read goes to the store) of hard links: a task links the file it already has into it, and a later task links it out,
so nothing is copied on disk either (a copy only where the two folders are on different file systems). A run's
entries are evicted when its outcome is recorded; entries older than MAX_AGE_S are swept then too (a run that died
before its outcome). A machine without the file (another Celery worker) downloads it as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from mediaflow.store import Store

ENV = "MEDIAFLOW_CACHE_DIR"
MAX_AGE_S = 2 * 24 * 3600.0
log = logging.getLogger(__name__)


def root() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def _entry(base: Path, bucket: str, key: str) -> Path | None:
    parts = [bucket, *key.split("/")]
    if any(p in ("", ".", "..") for p in parts):
        return None  # not a plain key: never cached
    return base.joinpath(*parts)


def _link(src: Path, dst: Path) -> None:
    """dst appears complete or not at all (a temporary name, then an atomic rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}")
    try:
        os.link(src, tmp)
    except OSError:  # another file system (or no hard links): a copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def keep(local: str | Path, bucket: str, key: str) -> None:
    """Remember a local file that holds exactly the object bucket/key (just uploaded or copied there)."""
    base = root()
    entry = _entry(base, bucket, key) if base else None
    if entry is None:
        return
    try:
        _link(Path(local), entry)
    except OSError as e:  # a cache that cannot be written only costs a download later
        log.warning("local cache: could not keep s3://%s/%s (%s)", bucket, key, e)


def fetch(store: Store, bucket: str, key: str, dest: str | Path) -> bool:
    """bucket/key to dest: from the cache when this machine has it (True), else downloaded and kept (False)."""
    base, dest = root(), Path(dest)
    entry = _entry(base, bucket, key) if base else None
    if entry is not None and entry.is_file():
        try:
            _link(entry, dest)
            log.info("s3://%s/%s from the local cache (%s)", bucket, key, entry)
            return True
        except OSError as e:
            log.warning("local cache: could not read %s (%s); downloading", entry, e)
    store.download(bucket, key, str(dest))
    if entry is not None:
        keep(dest, bucket, key)
    return False


def evict(bucket: str, prefix: str, *, now: float | None = None) -> None:
    """Forget a run's entries (bucket/prefix...), and any entry older than MAX_AGE_S."""
    base = root()
    if base is None or not base.is_dir():
        return
    folder = _entry(base, bucket, prefix.rstrip("/"))
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    cutoff = (now if now is not None else time.time()) - MAX_AGE_S
    for path in base.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
