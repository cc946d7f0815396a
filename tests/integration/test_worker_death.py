"""Worker death mid-transcode, on the real stack: `kill -9` of the ffmpeg process, and separately of the task process
that runs it. Airflow retries the task; the title publishes; the distribution bucket never shows a partial title;
the ledger keeps both attempts, the killed one closed."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime

import psutil
import pytest

from distribution_watch import DistributionWatch
from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.store import Buckets
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration

STREAM = "news_clip"
DAG_ID = f"value_stream__{STREAM}"
TRANSCODE = "transcode.transcode_ladder"


def _ffmpeg_encoding(source_name: str, timeout_s: float = 300) -> psutil.Process:
    """The ffmpeg process transcoding `source_name`, once it has been encoding for a moment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["name", "cmdline", "create_time"]):
            cmd = p.info["cmdline"] or []
            if (
                p.info["name"] == "ffmpeg"
                and any(a.endswith(source_name) for a in cmd)
                and "-hls_time" in " ".join(cmd)
            ):
                if time.time() - p.info["create_time"] > 1.0:
                    return p
        time.sleep(0.2)
    raise AssertionError(f"no ffmpeg transcoding {source_name} within {timeout_s:.0f}s")


def _title(stack, tmp_path, asset_id: str, seconds: float) -> tuple[str, str]:
    folder = tmp_path / asset_id
    folder.mkdir()
    samples.make_video(folder / f"{asset_id}.mp4", width=1280, height=720, fps=25, seconds=seconds)
    (folder / "manifest.json").write_text(json.dumps({"asset_id": asset_id, "title": "Worker death drill",
        "value_stream": STREAM, "source": {"file": f"{asset_id}.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
    (tmp_path / "avails.csv").write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                                         f"{asset_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
    s3, buckets = stack.s3_client(), Buckets.from_env()
    runner.merge_avails(s3, buckets, tmp_path / "avails.csv")
    runner.upload_delivery(s3, buckets, folder)
    return asset_id, f"worker_death__{asset_id}"


@pytest.mark.parametrize("victim", ["ffmpeg", "task process"])
def test_a_killed_transcode_is_retried_and_the_title_publishes_whole(stack, api, tmp_path, victim):
    stamp = datetime.now(UTC).strftime("%H%M%S")
    asset_id, run_id = _title(stack, tmp_path, f"death-{victim.split()[0]}-{stamp}", seconds=30)
    s3, buckets = stack.s3_client(), Buckets.from_env()
    watch = DistributionWatch(s3, buckets.distribution, asset_id)
    watch.start()
    api.wait_for_dags([DAG_ID])
    api.trigger(DAG_ID, run_id, {"delivery": asset_id})

    ffmpeg = _ffmpeg_encoding(f"{asset_id}.mp4")
    target = ffmpeg if victim == "ffmpeg" else ffmpeg.parent()
    assert victim == "ffmpeg" or "python" in " ".join(target.cmdline()) or "airflow" in " ".join(target.cmdline()), (
        target.cmdline()
    )
    os.kill(target.pid, signal.SIGKILL)
    if victim != "ffmpeg":
        # the task process died, its ffmpeg would run on as an orphan: a dead worker machine takes both
        try:
            ffmpeg.wait(timeout=5)
        except psutil.TimeoutExpired:
            ffmpeg.kill()

    done = runner.wait(stack, [(asset_id, DAG_ID, run_id, load_specs()[STREAM])], timeout_s=900)
    watch.stop.set()
    watch.join()
    run, tis = done[run_id]
    assert run["state"] == "success", tis
    transcode = next(t for t in tis if t["task_id"] == TRANSCODE)
    assert transcode["state"] == "success" and transcode["try_number"] == 2, transcode
    outcome = api.xcom(DAG_ID, run_id, "outcome")
    assert outcome["status"] == "published", outcome["reasons"]
    assert watch.looks > 10 and watch.torn == [], watch.torn

    rows = [a for a in Ledger(stack.ledger_url).attempts(DAG_ID, run_id) if a["task_id"] == TRANSCODE]
    assert [(a["try_number"], a["state"]) for a in sorted(rows, key=lambda a: a["try_number"])] == [
        (1, "up_for_retry"),
        (2, "success"),
    ]
    assert all(a["ended_at"] is not None for a in rows), "the killed attempt is closed, not running forever"
