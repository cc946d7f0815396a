"""The audience feedback loop on the real stack: a drop of viewing events lands, its Asset event runs
audience_feedback, and the next content batch starts the next episode of the series viewers watch to the end
before an earlier-delivered episode of a series they abandon. The deliveries go to the `feedback_drill` stream,
paused for the test: the batch creates their runs (in its order) without executing them."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import UTC, datetime

import pytest

from mediaflow import feedback
from mediaflow.ledger import Ledger
from mediaflow.stages import iso_z
from mediaflow.store import Buckets
from mediaflow_dev import runner

pytestmark = pytest.mark.integration
DAG = "value_stream__feedback_drill"
FEEDBACK_DAG = "audience_feedback"
POSTERS_DAG = "default_posters"


def test_viewing_feedback_changes_the_next_batch_order(stack, api, s3):
    api.wait_for_dags([FEEDBACK_DAG, runner.BATCH_DAG_ID, DAG])
    api.request("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": True})
    buckets, tag = Buckets.from_env(), uuid.uuid4().hex[:6]
    hit, flop = f"fb{tag}-hit", f"fb{tag}-flop"
    written = []
    try:
        # episode 1 of each series is live (its published state, as publish records it) and has been watched
        for series in (hit, flop):
            key = f"published/{series}-s01e01.json"
            state = {"asset_id": f"{series}-s01e01", "source": {"duration_s": 600.0}, "locales": {}}
            s3.put_object(Bucket=buckets.reports, Key=key, Body=json.dumps(state).encode())
            written.append(key)
        events = feedback.synthetic_events([
            {"asset_id": f"{hit}-s01e01", "duration_s": 600, "territories": ["US"], "locales": ["en-US"],
             "intro_drop": 0.05, "drop_per_min": 0.02},
            {"asset_id": f"{flop}-s01e01", "duration_s": 600, "territories": ["US"], "locales": ["en-US"],
             "intro_drop": 0.5, "drop_per_min": 1.0},
        ], seed=11, sessions_per_title=150)  # fmt: skip
        drop = f"viewing-events/e2e-{tag}.csv"
        s3.put_object(Bucket=buckets.landing, Key=drop, Body=events.to_csv(index=False).encode())
        since = _since()
        api.asset_event("mediaflow_viewing_events", {"key": drop})
        run = api.wait_asset_triggered_run(FEEDBACK_DAG, since, timeout=240)
        assert run["state"] == "success", run

        table = json.loads(s3.get_object(Bucket=buckets.reports, Key="feedback/latest/priorities.json")["Body"].read())
        assert table["series"][hit] > 0.8 > 0.3 > table["series"][flop]

        # episode 2 of each: the abandoned series' episode was delivered first
        for series, at in ((flop, "2026-11-28T00:00:00Z"), (hit, "2026-11-28T01:00:00Z")):
            d = f"{series}-s01e02"
            manifest = {"asset_id": d, "title": d, "value_stream": "feedback_drill", "source": {"file": "clip.mp4"},
                        "territories": ["US"], "delivered_at": at}  # fmt: skip
            s3.put_object(Bucket=buckets.landing, Key=f"deliveries/{d}/clip.mp4", Body=b"\x00" * 1024)
            s3.put_object(
                Bucket=buckets.landing, Key=f"deliveries/{d}/manifest.json", Body=json.dumps(manifest).encode()
            )
        run_id, _ = runner.run_content_batch(stack, timeout_s=300)
        triggered = [t["delivery_id"] for t in api.xcom(runner.BATCH_DAG_ID, run_id, "trigger_runs") or []]
        mine = [d for d in triggered if d.startswith(f"fb{tag}-")]
        assert mine == [f"{hit}-s01e02", f"{flop}-s01e02"], triggered
        assert {
            r["conf"]["delivery"] for r in api.request("GET", f"/api/v2/dags/{DAG}/dagRuns?limit=100")["dag_runs"]
        } >= set(mine)
    finally:  # later batches in this session keep their own order
        for key in written + ["feedback/latest/priorities.json"]:
            s3.delete_object(Bucket=buckets.reports, Key=key)


def test_make_runs_feedback_pass_exports_a_report_with_retention(stack, api, s3):
    """What `make run` does after its batch: synthetic viewers for the published titles, audience_feedback once,
    feedback/latest/ exported to out/reports/feedback/ with the retention chart and the recommendations."""
    buckets, tag = Buckets.from_env(), uuid.uuid4().hex[:6]
    asset = f"fb{tag}-feature"
    key = f"published/{asset}.json"
    state = {"asset_id": asset, "source": {"duration_s": 90.0}, "locales": {"captions:es-ES": {}}}
    s3.put_object(Bucket=buckets.reports, Key=key, Body=json.dumps(state).encode())
    summary = {"assets": [{"asset_id": asset, "status": "published", "value_stream": "feature_film",
                           "source": {"duration_s": 90.0}, "locales": {"es-ES": "published"},
                           "published": [{"channel": "web", "territories": ["US", "BR"]}]}]}  # fmt: skip
    try:
        assert runner.feedback_pass(stack, summary) is True
        page = runner.export_feedback(stack)
        html = page.read_text()
        assert page == stack.out_dir / "reports" / "feedback" / "index.html"
        assert re.search(rf"<b>{asset}</b> \(\d+ starts, 1:30\)", html) and "<polyline" in html  # its retention chart
        recs = json.loads((page.parent / "recommendations.json").read_text())["recommendations"]
        assert {(r["asset_id"], r["locale"]) for r in recs if r["asset_id"] == asset} == {(asset, "pt-BR")}
        assert (page.parent / "retention.parquet").exists() and (page.parent / "priorities.json").exists()
        # the dashboard shows the same: recommendations and the title's retention curve
        shown = api.request("GET", "/mediaflow/api/feedback")
        assert any(r["asset_id"] == asset and r["locale"] == "pt-BR" for r in shown["recommendations"])
        rows = [r for r in shown["retention"] if r["title"] == asset]
        curve = [r["retention"] for r in rows]  # 51 points, 2 % of its 90 s apart (1.8 s), from 0 to 90 s
        assert len(curve) == 51 and curve[0] == 1.0 and curve == sorted(curve, reverse=True)
        assert rows[-1]["bucket_start_s"] == pytest.approx(90.0) and rows[-1]["span_s"] == 90.0
    finally:
        s3.delete_object(Bucket=buckets.reports, Key=key)
        s3.delete_object(Bucket=buckets.reports, Key="feedback/latest/priorities.json")


def _since() -> str:
    return iso_z(datetime.now(UTC))


def _cut_clip(path) -> None:
    """Three moving shots with hard cuts at 3 s and 6 s (moving: still shots are frozen pictures to QC, which then
    asks a person): what the scene detector picks poster candidates from."""
    shots = (
        "[0:v]trim=duration=3[a];[1:v]trim=duration=3,setpts=PTS-STARTPTS[b];"
        "[2:v]trim=duration=3,setpts=PTS-STARTPTS,format=yuv420p[c];[a][b][c]concat=n=3:v=1:a=0[v]"
    )
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3",
                    "-f", "lavfi", "-i", "mandelbrot=size=640x360:rate=25",
                    "-f", "lavfi", "-i", "life=size=640x360:rate=25:mold=10:ratio=0.3:life_color=#00ff00",
                    "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=9",
                    "-filter_complex", shots, "-map", "[v]", "-map", "3:a", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-fflags", "+bitexact", str(path)], check=True)  # fmt: skip


def _watch(stack, api, s3, buckets, asset: str, posters: dict, *, seed: int) -> tuple[dict, dict]:
    """One drop of viewing events with a poster test on `asset`; (ab.json's decision, the default_posters run)."""
    events = feedback.synthetic_events([{"asset_id": asset, "duration_s": 9, "territories": ["US"], "locales": ["en-US"],
                                         "intro_drop": 0.1, "drop_per_min": 1.0, "posters": posters}],
                                       seed=seed, sessions_per_title=600)  # fmt: skip
    drop = f"viewing-events/posters-{asset}-{seed}.csv"
    s3.put_object(Bucket=buckets.landing, Key=drop, Body=events.to_csv(index=False).encode())
    since = _since()
    api.asset_event("mediaflow_viewing_events", {"key": drop})
    fed = api.wait_asset_triggered_run(FEEDBACK_DAG, since, timeout=240)
    assert fed["state"] == "success"
    # the default_posters run this feedback started: the one after it, not one an earlier feedback started
    run = api.wait_asset_triggered_run(POSTERS_DAG, fed["run_after"], timeout=240)
    assert run["state"] == "success", run
    ab = json.loads(s3.get_object(Bucket=buckets.reports, Key="feedback/latest/ab.json")["Body"].read())
    return ab["titles"][asset], run


def test_a_clear_poster_winner_becomes_the_default_poster_and_noise_changes_nothing(stack, api, s3, tmp_path):
    """Transcode made poster candidates from the clip's shots; viewers are shown p1 or p3. On noise the loop
    declares no winner and the poster stays; on a clear difference default_posters (started by the feedback
    Asset) republishes p3 as poster.jpg on both channels, once, recorded in the ledger and on the dashboard."""
    buckets, tag = Buckets.from_env(), uuid.uuid4().hex[:6]
    asset = f"fb{tag}-poster"
    folder = tmp_path / "deliveries" / asset
    folder.mkdir(parents=True)
    _cut_clip(folder / "clip.mp4")
    (folder / "manifest.json").write_text(json.dumps({"asset_id": asset, "title": "Poster test", "value_stream": "news_clip",
        "source": {"file": "clip.mp4"}, "territories": ["US"], "channels": ["web", "social"]}))  # fmt: skip
    (tmp_path / "deliveries" / "avails.csv").write_text(
        "asset_id,territory,channel,window_start,window_end,exclusive\n"
        + "".join(f"{asset},US,{ch},2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n" for ch in ("web", "social")))  # fmt: skip
    summary = runner.run_batch(stack, tmp_path / "deliveries", timeout_s=600)
    (entry,) = [a for a in summary["assets"] if a["asset_id"] == asset]
    assert entry["status"] == "published", entry["reasons"]

    def poster(channel: str) -> bytes:
        return s3.get_object(Bucket=buckets.distribution, Key=f"{channel}/{asset}/poster.jpg")["Body"].read()

    def candidate(channel: str, v: str) -> bytes:  # in the published version's folder
        version = json.loads(s3.get_object(Bucket=buckets.reports, Key=f"published/{asset}.json")["Body"].read())[
            "version"
        ]
        key = f"{channel}/{asset}/{version}/posters/{v}.jpg"
        return s3.get_object(Bucket=buckets.distribution, Key=key)["Body"].read()

    original = poster("web")
    assert len({candidate("web", v) for v in ("p1", "p2", "p3")}) == 3, "three different pictures to test"

    noise, run = _watch(stack, api, s3, buckets, asset, {"p1": 0.5, "p3": 0.5}, seed=5)
    assert noise["winner"] is None and "not significant" in noise["reason"], noise
    assert poster("web") == poster("social") == original
    ledger = Ledger(stack.ledger_url)
    assert ledger.poster_changes(asset) == []

    clear, run = _watch(stack, api, s3, buckets, asset, {"p1": 0.35, "p3": 0.75}, seed=6)
    assert clear["winner"] == "p3", clear
    for channel in ("web", "social"):
        assert poster(channel) == candidate(channel, "p3") != original
    (change,) = ledger.poster_changes(asset)
    assert (change["variant"], change["previous"], sorted(change["channels"])) == ("p3", None, ["social", "web"])
    assert change["dag_id"] == POSTERS_DAG and change["run_id"] == run["dag_run_id"] and change["p_value"] < 0.05
    state = json.loads(s3.get_object(Bucket=buckets.reports, Key=f"published/{asset}.json")["Body"].read())
    assert state["poster"]["variant"] == "p3"
    shown = api.request("GET", "/mediaflow/api/feedback")["default_posters"]
    assert [(p["variant"], p["run_id"]) for p in shown if p["asset_id"] == asset] == [("p3", run["dag_run_id"])]

    # the daily run with no new events decides the same: republishing it changes nothing, records nothing
    before = s3.head_object(Bucket=buckets.distribution, Key=f"web/{asset}/poster.jpg")["LastModified"]
    _, fed = runner.run_now(stack, FEEDBACK_DAG)
    again = api.wait_asset_triggered_run(POSTERS_DAG, fed["run_after"], timeout=240)
    assert again["state"] == "success"
    mapped = [t for t in api.task_instances(POSTERS_DAG, again["dag_run_id"]) if t["task_id"] == "set_default_poster"]
    assert any(t["rendered_map_index"] == asset for t in mapped), mapped
    assert len(ledger.poster_changes(asset)) == 1
    assert s3.head_object(Bucket=buckets.distribution, Key=f"web/{asset}/poster.jpg")["LastModified"] == before
