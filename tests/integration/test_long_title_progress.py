"""A long title on the real stack (issue 18, feature-length titles): while it transcodes, `make run`'s wait shows how
far the encode is, read from the task's XCom `progress` through the REST API while the task runs; then how many
objects the publish copied; and the title publishes. The samples' feature-length title, two minutes and one
caption locale of it, stands in for a feature (the stack fixture has the tasks report every 2 s:
MEDIAFLOW_TASK_PROGRESS_S). Its test pattern has no scene cut, so ffmpeg 5.x's own -progress says nothing before
the end: the figures inside the encode are the segments written (mediaflow.progress.FFmpegProgress)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mediaflow.store import Buckets
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration

SECONDS = 120
ASSET = "progress-feature"


def _delivery(root: Path) -> Path:
    """`python -m mediaflow_dev.samples feature`'s title (the one `make run` takes for 2 hours), two minutes of it, at
    360 lines: at 180 the split ladder encoded the two minutes in under the 2-s report interval on a quiet machine
    (CI saw only 0 % and 100 %); 360 lines is about four times the work, so the encode spans several reports."""
    samples.generate_feature(root, minutes=SECONDS / 60, height=360, locales=1, delivery_id=ASSET)
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
    assert list(entry["locales"].values()) == ["published"], entry["locales"]

    mine = [ln.split("] ", 1)[1] for ln in out.splitlines() if f"] {ASSET} " in ln]
    encoded = [(int(m[1]), m[2], m[3]) for ln in mine if (m := re.fullmatch(
        rf"{ASSET}\s+transcode (\d+) % \((\d+:\d\d) of (\d+:\d\d)\).*", ln))]  # fmt: skip
    assert encoded, f"no transcode percent line:\n{out}"
    assert {total for *_, total in encoded} == {"2:00"}, "of the source's whole duration"
    assert [p for p, *_ in encoded] == sorted(p for p, *_ in encoded), "never backwards"
    assert any(0 < p < 100 for p, *_ in encoded), f"a figure from inside the encode, while it ran:\n{out}"
    published = [
        (int(m[1]), int(m[2])) for ln in mine if (m := re.fullmatch(rf"{ASSET}\s+publish (\d+)/(\d+) objects.*", ln))
    ]
    assert published, f"no publish objects line:\n{out}"
    # the last figure: every object now in the distribution bucket for the title (ladder, audio, captions, posters;
    # each channel's master last), on both channels
    s3, bucket = stack.s3_client(), Buckets.from_env().distribution
    there = sum(len(page.get("Contents", [])) for channel in ("web", "ott_partner")
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{channel}/{ASSET}/"))  # fmt: skip
    assert published[-1] == (there, there), (published, there)
