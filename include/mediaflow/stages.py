"""Stage spans from task attempts, as DESIGN defines them.

start = first task start, end = last task end, active = union of task run intervals,
wait = start minus the previous stage's end (the run's queue time for the first stage).
"""

from __future__ import annotations

from datetime import UTC, datetime


def instant(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 string (a trailing Z allowed) or a datetime, as a datetime; None stays None."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += (cur_end - cur_start).total_seconds()
    return total


def stage_spans(
    attempts: list[dict],
    *,
    stage_order: list[str],
    queued_at: str | datetime | None,
    slas_s: dict[str, float],
    now: datetime | None = None,
) -> list[dict]:
    """attempts: [{stage, start, end, try_number}], one row per task attempt (mapped indexes, retries and review
    rework each a row of their own). One span per stage that started, in order.

    An attempt still running has end None: its stage has ended_at None, active time counted up to `now`, and
    sla_missed true as soon as `now` is past the SLA.
    """
    now = now or datetime.now(UTC)
    by_stage: dict[str, list[tuple[datetime, datetime | None, int]]] = {}
    for a in attempts:
        if instant(a.get("start")):
            by_stage.setdefault(a["stage"], []).append(
                (instant(a["start"]), instant(a.get("end")), int(a.get("try_number") or 1))
            )
    spans, prev_end = [], instant(queued_at)
    for stage in [s for s in stage_order if s in by_stage] + sorted(set(by_stage) - set(stage_order)):
        rows = by_stage[stage]
        running = any(end is None for _, end, _ in rows)
        start = min(begin for begin, _, _ in rows)
        end = None if running else max(end for _, end, _ in rows)
        sla = slas_s.get(stage)
        spans.append({
            "stage": stage,
            "started_at": iso_z(start),
            "ended_at": iso_z(end),
            "active_s": round(union_seconds([(b, e or now) for b, e, _ in rows]), 3),
            "wait_s": round(max(0.0, (start - prev_end).total_seconds()), 3) if prev_end else None,
            "attempts": max(tries for _, _, tries in rows),
            "sla_s": sla,
            "sla_missed": ((end or now) - start).total_seconds() > sla if sla is not None else None,
        })  # fmt: skip
        prev_end = end
    return spans


def iso_z(ts: datetime | str | None) -> str | None:
    """An instant as ISO 8601 UTC with a Z (naive means UTC); the one format summary.json and records use."""
    if ts is None:
        return None
    ts = instant(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
