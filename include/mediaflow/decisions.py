"""The value stream's workflow decisions as plain functions over the typed hand-offs (mediaflow.results).

DAG factories and operators only wire these in: which stages a delivery goes through (route), what a review
branch decided (review_result), how a run ended (outcome_status, lead_time_s), which deliveries a batch starts
now and under which run ids (trigger_plan), whether a run takes its delivery from landing (takes_delivery),
why a run waits for a person (awaiting_reasons). Each is unit-tested branch by branch (tests/unit/test_decisions.py), without a scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mediaflow import names
from mediaflow.results import HumanAnswer, Ingested, Published, Review
from mediaflow.stages import instant

# the stages after ingest that a delivery is routed to, in the order of the DAG
FULL_ROUTE = (names.TRANSCODE, names.LOCALIZE, names.COMPLIANCE, names.PUBLISH)
SIDECAR_ROUTE = (names.LOCALIZE, names.COMPLIANCE, names.PUBLISH)  # captions/audio for a published title: no transcode


def route(ingested: Ingested | dict) -> tuple[str, ...]:
    """The stages a delivery goes on to: none when ingest rejected it (the outcome still records it), no transcode
    for a sidecar-only delivery, every stage otherwise."""
    ingested = Ingested.from_dict(ingested)
    if not ingested.accepted:
        return ()
    return SIDECAR_ROUTE if ingested.sidecars_only else FULL_ROUTE


def review_result(branch: str, auto: Review | dict | None, human: HumanAnswer | dict | None) -> Review | None:
    """A branch's decision from whichever task gave it: the policy's automatic approval, else the person's answer
    (Approve -> approved, anything else -> rejected; no user: the timeout's default answered), else none yet."""
    if auto:
        return Review.from_dict(auto)
    if human:
        human = HumanAnswer.from_dict(human)
        return Review(branch=branch, decision="approved" if human.chosen == "Approve" else "rejected",
                      by=human.by or "timeout default", comment=human.comment)  # fmt: skip
    return None


def outcome_status(*, ingested: Ingested | dict | None, published: Published | dict | None,
                   reviews: list[Review | dict | None] | None, failed_tasks: list[str],
                   task_errors: dict[str, str] | None = None) -> tuple[str, list[str]]:  # fmt: skip
    """(status, reasons) of a run that has ended: rejected at ingest; rejected by a reviewer; published; nothing
    publishable on any channel (rejected); else failed, naming each failed task and its error."""
    ingested_d = Ingested.from_dict(ingested) if ingested else None
    pub = Published.from_dict(published) if published else None
    refused = [r for r in (Review.from_dict(r) for r in reviews or [] if r) if r.rejected]
    if ingested_d is not None and ingested_d.status == "rejected":
        return "rejected", list(ingested_d.reasons or [])
    if refused:
        return "rejected", [f"{r.branch} review rejected by {r.by}: {r.comment or 'no comment'}" for r in refused]
    if pub is not None and pub.published and not failed_tasks:
        return "published", list(pub.reasons)
    if pub is not None and not pub.published and not failed_tasks:  # no rights window open on any channel
        return "rejected", list(pub.reasons) or ["nothing publishable on any channel"]
    errors = task_errors or {}
    reasons = [f"task {t} failed: {errors[t]}" if errors.get(t) else f"task {t} failed: see its log in the Airflow UI"
               for t in failed_tasks]  # fmt: skip
    return "failed", reasons or ["the run ended before publishing (no task reported a failure)"]


def lead_time_s(status: str, delivered_at: str | None, finished_at: datetime) -> float | None:
    """Seconds from the delivery's arrival to the run's end, for a published title only."""
    if status != "published" or not delivered_at:
        return None
    return round((finished_at - instant(delivered_at)).total_seconds(), 3)


def awaiting_reasons(
    waiting: list[str], checks: dict[str, dict], *, ui_url: str, dag_id: str, run_id: str
) -> list[str]:
    """Why a run parked on human reviews waits, per waiting `review.<branch>_approval` task: each finding of the
    checks that feed the branch (naming the check, the figure and the limit; else the stream's policy), then where
    a person answers it."""
    reasons = []
    for task in waiting:
        branch = names.branch_of_approval(task)
        why = [p for c in names.CHECKS_OF.get(branch, ()) for p in (checks.get(c) or {}).get("problems") or []]
        reasons += [f"{branch} review: {w}" for w in why] or [
            f"{branch} review waits for a person: the stream's policy asks for {branch} review by a person"
        ]
        reasons.append(
            f"{branch} review waits for a person: in the Airflow UI ({ui_url}) open Browse > "
            f"Required Actions (or DAG {dag_id}, run {run_id}, task {task}) and choose Approve or Reject"
        )
    return reasons


def takes_delivery(*, bucket: str | None, prefix: str | None, delivery_id: str | None, landing: str,
                   deliveries: str) -> bool:  # fmt: skip
    """Whether a run's delivery is a folder of the landing bucket's deliveries (then the run marks it taken, so no
    later batch starts it again); an s3:// delivery elsewhere is not the batch's business."""
    return bucket is not None and bucket == landing and prefix == f"{deliveries}/{delivery_id}/"


@dataclass(frozen=True)
class TriggerPlan:
    """What one batch run starts: `start` rows (each with its run id), `later` rows (beyond max_runs)."""

    kind: str  # nightly | landed
    day: str
    start: list[dict]  # the validated rows, each with "run_id" added
    later: list[dict]


def trigger_plan(valid: list[dict], *, claims: int, max_runs: int, priorities: dict | None, run_type: str,
                 when: datetime | str | None) -> TriggerPlan:  # fmt: skip
    """Which valid deliveries a batch starts now: claims an interrupted batch left count against max_runs; urgent
    first (batch.plan); run ids deterministic from the batch's kind (`landed` when a landing event started it,
    else `nightly`), its day and the delivery, so no batch ever starts a title twice."""
    from mediaflow import batch  # batch imports flow, which imports this module

    kind = "landed" if run_type == "asset_triggered" else "nightly"
    day = batch.day_of(when)
    start, later = batch.plan(valid, cap=max(0, int(max_runs) - claims), priorities=priorities)
    return TriggerPlan(kind=kind, day=day, later=later,
                       start=[{**row, "run_id": batch.run_id_for(kind, day, row["delivery_id"])} for row in start])  # fmt: skip
