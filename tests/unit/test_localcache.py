"""The machine-local cache of a run's work objects: a second reader gets the same bytes without the store, bad keys
and a missing cache folder fall back to the store, and a run's entries go when its outcome is recorded."""

from __future__ import annotations

import os
import time

from mediaflow import localcache


class CountingStore:
    def __init__(self, objects: dict[tuple[str, str], bytes]):
        self.objects, self.downloads = objects, 0

    def download(self, bucket, key, path):
        self.downloads += 1
        with open(path, "wb") as f:
            f.write(self.objects[(bucket, key)])


def test_the_source_is_read_from_the_store_once_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv(localcache.ENV, str(tmp_path / "cache"))
    store = CountingStore({("work", "a1/run1/source/v.mp4"): b"frames"})
    checked = tmp_path / "ingest" / "v.mp4"
    checked.parent.mkdir()
    checked.write_bytes(b"frames")
    localcache.keep(checked, "work", "a1/run1/source/v.mp4")  # ingest, after copying it to the work bucket
    checked.unlink()  # ingest's temporary folder is gone
    for task in ("transcode", "qc"):
        dest = tmp_path / task / "v.mp4"
        dest.parent.mkdir()
        assert localcache.fetch(store, "work", "a1/run1/source/v.mp4", dest) is True
        assert dest.read_bytes() == b"frames"
    assert store.downloads == 0
    localcache.evict("work", "a1/run1/")  # the outcome
    dest = tmp_path / "again.mp4"
    assert localcache.fetch(store, "work", "a1/run1/source/v.mp4", dest) is False
    assert store.downloads == 1 and dest.read_bytes() == b"frames"


def test_without_a_cache_folder_every_read_goes_to_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv(localcache.ENV, raising=False)
    store = CountingStore({("work", "k"): b"x"})
    localcache.keep(tmp_path / "nothing", "work", "k")  # no error, nothing kept
    for i in range(2):
        assert localcache.fetch(store, "work", "k", tmp_path / f"{i}") is False
    assert store.downloads == 2


def test_a_key_with_dot_segments_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(localcache.ENV, str(tmp_path / "cache"))
    store = CountingStore({("work", "a/../../etc/x"): b"x"})
    localcache.fetch(store, "work", "a/../../etc/x", tmp_path / "d")
    assert not (tmp_path / "etc").exists() and not any((tmp_path / "cache").rglob("*x"))


def test_entries_of_runs_that_never_ended_are_swept_after_two_days(tmp_path, monkeypatch):
    monkeypatch.setenv(localcache.ENV, str(tmp_path / "cache"))
    for name in ("old", "new"):
        (tmp_path / name).write_bytes(name.encode())
        localcache.keep(tmp_path / name, "work", f"{name}/run/source/f")
    old = tmp_path / "cache" / "work" / "old" / "run" / "source" / "f"
    stamp = time.time() - localcache.MAX_AGE_S - 60
    os.utime(old, (stamp, stamp))
    localcache.evict("work", "other/run/")
    assert not old.exists() and (tmp_path / "cache" / "work" / "new" / "run" / "source" / "f").exists()
