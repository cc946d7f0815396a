"""The quality gate's place in the review (issue 20): a rung below the stream's floor sends the title to QC review,
or rejects it outright when the stream says `on_fail: reject`; an automatic rejection keeps publish from running."""

from __future__ import annotations

from mediaflow import compliance, flow, names, quality
from mediaflow.decisions import outcome_status

BELOW = "rendition v1080: VMAF 41.2 below the stream's floor 80"


def _checks(*, failed: list[str], on_fail: str | None, problems: list[str] | None = None) -> dict:
    gate = {"floors": {"v1080": 80}, "failed": failed, "on_fail": on_fail}
    qc = {"check": names.TECHNICAL_QC, "passed": not failed and not problems,
          "problems": (problems or []) + failed, "quality_gate": gate}  # fmt: skip
    return {names.TECHNICAL_QC: qc, names.LOUDNESS: {"problems": []}}


def test_a_rung_below_its_floor_asks_a_person_by_default():
    mode, why = compliance.review_mode(names.QC, "auto", _checks(failed=[BELOW], on_fail="review"))
    assert (mode, why) == ("human", [BELOW])


def test_a_rung_below_its_floor_rejects_when_the_stream_says_so():
    mode, why = compliance.review_mode(names.QC, "auto", _checks(failed=[BELOW], on_fail="reject"))
    assert (mode, why) == ("reject", [BELOW])
    review = compliance.auto_rejection(names.QC, why)
    assert review["decision"] == "rejected" and review["by"] == "quality gate" and BELOW in review["comment"]
    status, reasons = outcome_status(ingested={"status": "accepted", "asset_id": "a"}, published=None,
                                     reviews=[review], failed_tasks=[])  # fmt: skip
    assert status == "rejected" and reasons == [f"qc review rejected by quality gate: {BELOW}"]


def test_the_gate_does_not_touch_the_other_branches():
    checks = _checks(failed=[BELOW], on_fail="reject")
    assert compliance.review_mode(names.EDITORIAL, "auto", checks)[0] == "auto"
    assert compliance.review_mode(names.LEGAL, "human", checks)[0] == "human"


def test_passing_rungs_leave_the_policy_alone():
    assert compliance.review_mode(names.QC, "auto", _checks(failed=[], on_fail="reject"))[0] == "auto"
    assert compliance.review_mode(names.QC, "human", _checks(failed=[], on_fail="reject"))[0] == "human"
    black = "x.mp4: black 4.0-8.0 s (4.0 s) mid-programme, limit 2 s"
    assert compliance.review_mode(names.QC, "auto", _checks(failed=[], on_fail=None, problems=[black])) == (
        "human", [black])  # fmt: skip


def test_publish_is_refused_only_by_a_rejected_review():
    approved = compliance.auto_approval(names.EDITORIAL, ["ok"])
    rejected = compliance.auto_rejection(names.QC, [BELOW])
    assert compliance.refused_reviews([approved, None]) == []
    assert compliance.refused_reviews([approved, rejected, None]) == [f"qc review rejected by quality gate: {BELOW}"]


def test_the_gate_reads_the_rungs_as_transcode_hands_them_on():
    """flow.scored_rungs (transcode's `renditions`) -> quality.gate, as technical QC calls it."""
    scores = [quality.RungScore(rendition="v360", width=640, height=360, vmaf=49.8, vmaf_min=30.1, vmaf_hmean=45.0,
                                psnr=27.3, ssim=0.81, windows=[[0.0, 6.0]], frames=150).to_dict(),
              quality.RungScore(rendition="v180", width=320, height=180, vmaf=91.0, vmaf_min=85.0, vmaf_hmean=90.8,
                                psnr=39.0, ssim=0.97, windows=[[0.0, 6.0]], frames=150).to_dict()]  # fmt: skip
    variants = [
        {"uri": "v360/index.m3u8", "avg_bps": 101_000, "peak_bps": 130_000},
        {"uri": "v180/index.m3u8", "avg_bps": 590_000, "peak_bps": 650_000},
    ]
    rungs = flow.scored_rungs(scores, variants)
    assert [(r["rendition"], r["bitrate_kbps"], r["peak_kbps"]) for r in rungs] == [
        ("v360", 101, 130),
        ("v180", 590, 650),
    ]
    spec = quality.Quality(vmaf_floor=((360, 80.0), (180, 60.0)), on_fail="review")
    assert quality.gate(rungs, spec) == ["rendition v360: VMAF 49.8 below the stream's floor 80 (windows 0:00-0:06)"]
    checks = {names.TECHNICAL_QC: {"renditions": rungs}}
    assert [r["rendition"] for r in flow.rendition_scores(checks)] == ["v360", "v180"]
    assert set(flow.rendition_scores(checks)[0]) == set(flow.SUMMARY_RENDITION)
