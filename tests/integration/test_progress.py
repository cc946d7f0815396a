"""A long title on the real stack (issue 18, feature-length titles): while it transcodes, `make run`'s wait shows how
far the encode is, read from the task's XCom `progress` through the REST API while the task runs; then how many
objects the publish copied; and the title publishes. Two minutes of low-resolution picture with a caption locale
stands in for a feature (the stack fixture has the tasks report every 2 s: MEDIAFLOW_TASK_PROGRESS_S); its test
pattern has no scene cut, so ffmpeg 5.x's own -progress says nothing before the end and the figures inside the
encode are the segments written (mediaflow.progress.FFmpegProgress)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mediaflow import runner, samples
from mediaflow.store import Buckets

pytestmark = pytest.mark.integration

SECONDS = 120
ASSET = "progress-feature"


def _delivery(root: Path) -> Path:
    folder = root / ASSET
    folder.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={SECONDS}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
                    str(folder / "feature.mp4")], check=True, timeout=300)  # fmt: skip
    captions = [c for c in samples.write_captions(folder, SECONDS) if c["locale"] == "en-US"]
    for name in ("es-ES.srt", "de-DE.ttml"):
        (folder / name).unlink()
    manifest = {"asset_id": ASSET, "title": "Progress: a feature-length stand-in", "value_stream": "feature_film",
                "source": {"file": "feature.mp4"}, "captions": captions, "territories": ["US"],
                "channels": ["web", "ott_partner"]}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (root / "avails.csv").write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                                     f"{ASSET},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n"
                                     f"{ASSET},US,ott_partner,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
    return root


def test_a_long_title_shows_transcode_percent_and_objects_published_and_publishes(stack, tmp_path, monkeypatch,
                                                                                    capsys):  # fmt: skip
    deliveries = _delivery(tmp_path / "deliveries")
    monkeypatch.setenv("MEDIAFLOW_PROGRESS_EVERY_S", "1")  # a tally (and a progress read) every poll
    runs = runner.submit(stack, deliveries)
    done = runner.wait(stack, runs, timeout_s=900)
    summary = runner.summarize(stack, runs, done)
    out = capsys.readouterr().out
    print(out)  # for whoever reads a failure

    [entry] = summary["assets"]
    assert entry["status"] == "published", entry["reasons"]
    assert entry["locales"] == {"en-US": "published"}

    mine = [ln.split("] ", 1)[1] for ln in out.splitlines() if f"] {ASSET} " in ln]
    encoded = [(int(m[1]), m[2], m[3]) for ln in mine if (m := re.fullmatch(
        rf"{ASSET}\s+transcode (\d+) % \((\d+:\d\d) of (\d+:\d\d)\).*", ln))]  # fmt: skip
    assert encoded, f"no transcode percent line:\n{out}"
    assert {total for *_, total in encoded} == {"2:00"}, "of the source's whole duration"
    assert [p for p, *_ in encoded] == sorted(p for p, *_ in encoded), "never backwards"
    assert any(0 < p < 100 for p, *_ in encoded), f"a figure from inside the encode, while it ran:\n{out}"
    published = [(int(m[1]), int(m[2])) for ln in mine if (m := re.fullmatch(rf"{ASSET}\s+publish (\d+)/(\d+) objects.*", ln))]
    assert published, f"no publish objects line:\n{out}"
    # the last figure: every object now in the distribution bucket for the title (ladder, audio, captions, posters;
    # each channel's master last), on both channels
    s3, bucket = stack.s3_client(), Buckets.from_env().distribution
    there = sum(len(page.get("Contents", [])) for channel in ("web", "ott_partner")
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{channel}/{ASSET}/"))  # fmt: skip
    assert published[-1] == (there, there), (published, there)
