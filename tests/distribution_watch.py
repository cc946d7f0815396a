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

    def run(self) -> None:
        while not self.stop.is_set():
            keys = {
                o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])
            }
            for key in (k for k in keys if k.endswith(".m3u8")):
                try:
                    body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
                except self.s3.exceptions.NoSuchKey:
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
