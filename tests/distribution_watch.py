"""Watches a title's distribution prefix the way a player would: lists it every 0.3 s and records any moment a
playlist names an object that is not there (a torn title)."""

from __future__ import annotations

import threading
import time

import m3u8

from mediaflow.store import distribution_prefix


class DistributionWatch(threading.Thread):
    """Lists the title's distribution prefix every 0.3 s; records any moment a playlist names a missing object."""

    def __init__(self, s3, bucket: str, asset_id: str):
        super().__init__(daemon=True)
        self.s3, self.bucket, self.prefix = s3, bucket, distribution_prefix("web", asset_id)
        self.torn: list[str] = []
        self.looks = 0
        self.stop = threading.Event()

    def _keys(self) -> set[str]:
        return {o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])}

    def run(self) -> None:
        while not self.stop.is_set():
            bodies = {}
            for key in (k for k in self._keys() if k.endswith(".m3u8")):
                try:
                    bodies[key] = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
                except self.s3.exceptions.NoSuchKey:
                    continue
            # listed again after reading the playlists: a publish writes what a playlist names before the playlist
            # (a new version's objects before the master that names them), so these keys must all be there
            keys = self._keys()
            for key, body in bodies.items():
                if key not in keys:  # a version older than the previous one, deleted since: no master names it
                    continue
                base = key.rsplit("/", 1)[0] + "/"
                playlist = m3u8.loads(body)
                named = (
                    [p.uri for p in playlist.playlists]
                    + [m.uri for m in playlist.media if m.uri]
                    + [s.uri for s in playlist.segments]
                )
                missing = [u for u in named if base + u not in keys]
                if missing:
                    self.torn.append(f"{key} names missing {missing[:3]}")
            self.looks += 1
            time.sleep(0.3)
