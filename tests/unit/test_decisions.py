"""The workflow decisions (mediaflow.decisions) branch by branch, over hand-made inputs, and the typed hand-offs
(mediaflow.results) round-tripping the XCom payloads unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mediaflow import decisions
from mediaflow.results import UNSET, CheckResult, Ingested, Localized, Published, Review, SummaryEntry, with_ledger

FINISHED = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)
ACCEPTED = {"delivery": "d1", "delivery_id": "d1", "asset_id": "a1", "value_stream": "series_episode",
            "status": "accepted", "mode": "full", "reasons": [], "warnings": [], "title": "T", "source_uri": "s3://w/s",
            "source": {"duration_s": 8.0}, "previous": None, "locales": [], "locales_skipped": [],
            "territories": ["US"], "channels": ["web"], "delivered_at": "2026-11-28T01:00:00Z"}  # fmt: skip
REJECTED = {"delivery": "d2", "delivery_id": "d2", "asset_id": None, "value_stream": "series_episode",
            "status": "rejected", "reasons": ["manifest.json: missing from the delivery"],
            "quarantine_uri": "s3://q/deliveries/d2/"}  # fmt: skip
PUB = {"published": [{"channel": "web", "territories": ["US"], "uri": "s3://dist/web/a1/master.m3u8", "local_path": None}],
       "locales": {}, "reasons": ["locale fr (audio) rejected: fr.wav: silent"], "warnings": []}  # fmt: skip
NOTHING = {"published": [], "locales": {}, "reasons": ["rights web/US: no window"], "warnings": []}


# ---------------------------------------------------------------- route


@pytest.mark.parametrize("ingested, stages", [
    (ACCEPTED, ("transcode", "localize", "compliance", "publish")),
    ({**ACCEPTED, "mode": "sidecars"}, ("localize", "compliance", "publish")),
    (REJECTED, ()),
    (Ingested.from_dict(ACCEPTED), ("transcode", "localize", "compliance", "publish")),
])  # fmt: skip
def test_route(ingested, stages):
    assert decisions.route(ingested) == stages


# ---------------------------------------------------------------- review result


def test_review_result_prefers_the_automatic_approval():
    auto = {"branch": "qc", "decision": "approved", "by": "auto", "comment": "qc: automated checks passed"}
    got = decisions.review_result("qc", auto, {"chosen": "Reject", "by": "bob", "comment": ""})
    assert got == Review(**auto) and got.to_dict() == auto


@pytest.mark.parametrize("human, decision, by", [
    ({"chosen": "Approve", "by": "alice", "comment": "fine"}, "approved", "alice"),
    ({"chosen": "Reject", "by": "bob", "comment": "fine"}, "rejected", "bob"),
    ({"chosen": "Approve", "by": "", "comment": ""}, "approved", "timeout default"),  # nobody answered in time
])  # fmt: skip
def test_review_result_from_the_persons_answer(human, decision, by):
    got = decisions.review_result("legal", None, human)
    assert got.to_dict() == {"branch": "legal", "decision": decision, "by": by, "comment": human["comment"]}


def test_review_result_none_while_nobody_decided():
    assert decisions.review_result("legal", None, None) is None


# ---------------------------------------------------------------- outcome


def status(**kw):
    return decisions.outcome_status(**{"ingested": ACCEPTED, "published": PUB, "reviews": [], "failed_tasks": [], **kw})


def test_outcome_rejected_at_ingest_keeps_ingests_reasons_whatever_else_happened():
    assert status(ingested=REJECTED, failed_tasks=["x"]) == ("rejected", REJECTED["reasons"])


def test_outcome_rejected_by_a_reviewer_names_branch_person_and_comment():
    reviews = [{"branch": "editorial", "decision": "approved", "by": "auto", "comment": ""}, None,
               Review(branch="legal", decision="rejected", by="bob", comment=""),
               {"branch": "qc", "decision": "rejected", "by": "eve", "comment": "black frames"}]  # fmt: skip
    assert status(reviews=reviews) == ("rejected", ["legal review rejected by bob: no comment",
                                                    "qc review rejected by eve: black frames"])  # fmt: skip


def test_outcome_published_keeps_publishs_reasons():
    assert status() == ("published", PUB["reasons"])


def test_outcome_nothing_publishable_is_rejected_with_the_rights_reasons_or_a_default():
    assert status(published=NOTHING) == ("rejected", NOTHING["reasons"])
    assert status(published={**NOTHING, "reasons": []}) == ("rejected", ["nothing publishable on any channel"])


def test_outcome_failed_names_each_task_and_its_error():
    got = status(failed_tasks=["publish.publish_channels", "transcode.transcode_ladder"],
                 task_errors={"transcode.transcode_ladder": "ffmpeg exited 1"})  # fmt: skip
    assert got == ("failed", ["task publish.publish_channels failed: see its log in the Airflow UI",
                              "task transcode.transcode_ladder failed: ffmpeg exited 1"])  # fmt: skip


def test_outcome_failed_without_a_failed_task_still_says_why():
    assert status(ingested=None, published=None) == (
        "failed",
        ["the run ended before publishing (no task reported a failure)"],
    )
    assert status(published=None)[0] == "failed"  # accepted, but publish never ran


def test_lead_time_only_for_a_published_title_with_an_arrival():
    assert decisions.lead_time_s("published", "2026-11-28T01:00:00Z", FINISHED) == 9000.0
    assert decisions.lead_time_s("published", None, FINISHED) is None
    assert decisions.lead_time_s("rejected", "2026-11-28T01:00:00Z", FINISHED) is None


# ---------------------------------------------------------------- waiting for a person


def test_awaiting_reasons_give_each_finding_then_where_to_answer():
    checks = {"rights": {"problems": ["rights web/GB: no window"]}, "loudness": {"problems": []}, "technical_qc": {}}
    got = decisions.awaiting_reasons(["review.legal_approval", "review.qc_approval"], checks, ui_url="http://ui",
                                     dag_id="dag", run_id="r1")  # fmt: skip
    assert got[0] == "legal review: rights web/GB: no window"
    assert (
        got[1].startswith("legal review waits for a person: in the Airflow UI (http://ui)")
        and "task review.legal_approval" in got[1]
    )
    assert got[2] == "qc review waits for a person: the stream's policy asks for qc review by a person"
    assert "run r1" in got[3] and len(got) == 4


# ---------------------------------------------------------------- the ingest's delivery and the batch


@pytest.mark.parametrize("bucket, prefix, taken", [
    ("landing", "deliveries/d1/", True),
    ("landing", "elsewhere/d1/", False),
    ("other", "deliveries/d1/", False),
    (None, None, False),  # not a delivery at all: ingest rejects it
])  # fmt: skip
def test_takes_delivery(bucket, prefix, taken):
    assert decisions.takes_delivery(bucket=bucket, prefix=prefix, delivery_id="d1", landing="landing",
                                    deliveries="deliveries") is taken  # fmt: skip


ROWS = [{"delivery_id": "n1", "priority": "normal", "delivered_at": "2026-11-28T01:00:00Z", "value_stream": "s"},
        {"delivery_id": "u1", "priority": "urgent", "delivered_at": "2026-11-28T02:00:00Z", "value_stream": "s"},
        {"delivery_id": "l1", "priority": "low", "delivered_at": "2026-11-28T00:00:00Z", "value_stream": "s"}]  # fmt: skip


def test_trigger_plan_nightly_urgent_first_with_deterministic_run_ids():
    plan = decisions.trigger_plan(ROWS, claims=0, max_runs=2, priorities=None, run_type="scheduled",
                                  when=datetime(2026, 11, 29, 2, 0, tzinfo=UTC))  # fmt: skip
    assert (plan.kind, plan.day) == ("nightly", "2026-11-29")
    assert [(r["delivery_id"], r["run_id"]) for r in plan.start] == [("u1", "nightly__2026-11-29__u1"),
                                                                     ("n1", "nightly__2026-11-29__n1")]  # fmt: skip
    assert [r["delivery_id"] for r in plan.later] == ["l1"]


def test_trigger_plan_landing_event_and_claims_count_against_max_runs():
    plan = decisions.trigger_plan(ROWS, claims=2, max_runs=3, priorities=None, run_type="asset_triggered",
                                  when="2026-11-29T05:00:00Z")  # fmt: skip
    assert [r["run_id"] for r in plan.start] == ["landed__2026-11-29__u1"]
    assert decisions.trigger_plan(ROWS, claims=5, max_runs=3, priorities=None, run_type="manual", when=None).start == []


# ---------------------------------------------------------------- typed hand-offs


def test_ingest_payloads_round_trip_unchanged_keys_and_order():
    for payload in (ACCEPTED, REJECTED, {**ACCEPTED, "something_new": 1}):
        back = Ingested.from_dict(payload).to_dict()
        assert json.dumps(back) == json.dumps(payload)
    assert Ingested.from_dict(REJECTED).mode is UNSET and not Ingested.from_dict(REJECTED).accepted


def test_check_and_locale_results_round_trip():
    qc = {
        "check": "technical_qc",
        "passed": False,
        "problems": ["x"],
        "warnings": [],
        "findings": [],
        "detections": None,
    }
    assert CheckResult.from_dict(qc).to_dict() == qc and CheckResult.from_dict(qc).get("findings") == []
    rights = {"check": "rights", "passed": True, "problems": [], "decisions": []}
    assert json.dumps(CheckResult.from_dict(rights).to_dict()) == json.dumps(rights)
    loc = {"kind": "captions", "locale": "fr", "file": "fr.srt", "status": "rejected", "reasons": ["bad", "worse"],
           "warnings": [], "hls_uri": None, "files": [], "rendition": None, "loudness": None}  # fmt: skip
    assert (
        Localized.from_dict(loc).to_dict() == loc and Localized.from_dict(loc).locale_status == "rejected: bad; worse"
    )
    assert Published.from_dict({**PUB, "lease_wait_s": 0.5}).to_dict() == {**PUB, "lease_wait_s": 0.5}


def test_summary_entry_writes_only_what_was_set_and_checks_the_status():
    entry = SummaryEntry(
        asset_id=None, delivery_id="d", value_stream="s", status="failed", reasons=["r"], dag_run_id="x"
    )
    assert list(entry.to_dict()) == ["asset_id", "delivery_id", "value_stream", "status", "reasons", "dag_run_id",
                                     "lead_time_s", "source", "locales", "published"]  # fmt: skip
    assert list(with_ledger(entry.to_dict(), stages=[], alerts=[]))[-2:] == ["stages", "alerts"]
    with_stages = SummaryEntry(asset_id=None, delivery_id="d", value_stream="s", status="published", reasons=[],
                               dag_run_id="x", stages=None).to_dict()  # fmt: skip
    assert list(with_ledger(with_stages, stages=[], alerts=[])).index("stages") == 8  # stays in its v1 place
    with pytest.raises(ValueError, match="not one of"):
        SummaryEntry(asset_id=None, delivery_id="d", value_stream="s", status="done", reasons=[], dag_run_id="x")
    reviewed = SummaryEntry.from_dict({**entry.to_dict(), "reviews": [{"branch": "qc", "decision": "approved",
                                                                       "by": "auto", "comment": ""}]})  # fmt: skip
    assert reviewed.reviews == [Review("qc", "approved", "auto", "")]
