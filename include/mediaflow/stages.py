"""Stage spans from task attempts, as DESIGN defines them.

start = first task start, end = last task end, active = union of task run intervals,
wait = start minus the previous stage's end (the run's queue time for the first stage).
"""

from __future__ import annotations

from datetime import datetime


def _t(value: str | datetime | None) -> datetime | None:
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
    attempts: list[dict], *, stage_order: list[str], queued_at: str | datetime | None, slas_s: dict[str, float]
) -> list[dict]:
    """attempts: [{stage, start, end, try_number}] of tasks that ran. One span per stage that ran, in order."""
    by_stage: dict[str, list[dict]] = {}
    for a in attempts:
        if _t(a.get("start")) and _t(a.get("end")):
            by_stage.setdefault(a["stage"], []).append(a)
    spans, prev_end = [], _t(queued_at)
    for stage in [s for s in stage_order if s in by_stage] + sorted(set(by_stage) - set(stage_order)):
        rows = by_stage[stage]
        start = min(_t(a["start"]) for a in rows)
        end = max(_t(a["end"]) for a in rows)
        sla = slas_s.get(stage)
        spans.append({
            "stage": stage,
            "started_at": start.isoformat().replace("+00:00", "Z"),
            "ended_at": end.isoformat().replace("+00:00", "Z"),
            "active_s": round(union_seconds([(_t(a["start"]), _t(a["end"])) for a in rows]), 3),
            "wait_s": round(max(0.0, (start - prev_end).total_seconds()), 3) if prev_end else None,
            "attempts": max(int(a.get("try_number") or 1) for a in rows),
            "sla_s": sla,
            "sla_missed": (end - start).total_seconds() > sla if sla is not None else None,
        })  # fmt: skip
        prev_end = end
    return spans
