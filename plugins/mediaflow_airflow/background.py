"""What the DAGs around the value streams share (metrics, audience feedback, default posters, alert outbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def background_dag_args(*, owner: str, retries: int = 2, retry_delay_s: float = 30) -> dict:
    """DAG(...) keyword arguments: one run at a time, no catch-up, and every task below every value-stream task
    (priority 1, absolute), so titles go first and reports after."""
    return {
        "start_date": datetime(2026, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "owner": owner,
            "retries": retries,
            "retry_delay": timedelta(seconds=retry_delay_s),
            "priority_weight": 1,
            "weight_rule": "absolute",
        },  # fmt: skip
    }
