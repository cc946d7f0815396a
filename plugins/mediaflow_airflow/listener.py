"""Stage ledger listener: every task-instance attempt and every run of a value-stream DAG, written to the ledger.

Registered by the `mediaflow` AirflowPlugin. Task events fire in the task's own process (any executor), run
events in the scheduler. A ledger outage is retried, spooled and counted (`mediaflow.ledger.safe`): it never
fails a task and never stalls the scheduler.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

from mediaflow import names

log = logging.getLogger(__name__)


def _url() -> str:
    from mediaflow_airflow.hooks import LedgerHook

    return LedgerHook().url()


def _write(method: str, **kwargs) -> None:
    from mediaflow import ledger

    if not ledger.safe(_url, method, **kwargs):
        try:
            from airflow.sdk.observability.stats import Stats

            Stats.incr("mediaflow.ledger.spooled")
        except Exception:  # metrics are optional; the spool file and the warning are the record
            pass


def _is_stream(dag_id: str) -> bool:
    return names.stream_of(dag_id) is not None


def _state(value, default: str) -> str:
    value = getattr(value, "value", value)
    return str(value) if value else default


def _attempt(ti, state: str, error: BaseException | str | None = None) -> None:
    if not _is_stream(ti.dag_id):
        return
    _write(
        "record_attempt",
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
        state=state,
        started_at=ti.start_date,
        ended_at=None if state == "running" else ti.end_date,
        queued_at=getattr(ti, "queued_dttm", None),  # only the scheduler-side TaskInstance knows it
        error=_error_text(error),
    )


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    return " ".join(str(error).split()) or None


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    _attempt(task_instance, "running")


@hookimpl
def on_task_instance_success(previous_state, task_instance):
    _attempt(task_instance, "success")
    if _is_stream(task_instance.dag_id) and task_instance.task_id == names.INGEST_ID:
        _record_asset(task_instance)
    if _is_stream(task_instance.dag_id) and task_instance.task_id == names.OUTCOME:
        _record_outcome(task_instance)


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    # up_for_retry or failed: the same event, told apart by the state the runner already set
    _attempt(task_instance, _state(getattr(task_instance, "state", None), "failed"), error)


@hookimpl
def on_task_instance_skipped(previous_state, task_instance):
    _attempt(task_instance, "skipped")


def _record_asset(ti) -> None:
    """Once ingest knows the asset id and arrival time, the run row carries them (alerts and lead time use them),
    and the source's duration and picture height (the forecast scales a title's transcode time by them)."""
    try:
        result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
    except Exception:
        log.warning("ledger: could not read the ingest result of %s %s", ti.dag_id, ti.run_id, exc_info=True)
        return
    if isinstance(result, dict):
        from mediaflow import ledger

        _write("record_run", dag_id=ti.dag_id, run_id=ti.run_id, asset_id=result.get("asset_id"),
               delivered_at=result.get("delivered_at"), **ledger.source_features(result.get("source")))  # fmt: skip


def _record_outcome(ti) -> None:
    """The run's outcome on its ledger row: the quality half of the value-stream scorecard."""
    from mediaflow.flow import quality_of

    try:
        entry = ti.xcom_pull(task_ids=ti.task_id)
    except Exception:
        log.warning("ledger: could not read the outcome of %s %s", ti.dag_id, ti.run_id, exc_info=True)
        return
    if isinstance(entry, dict):
        _write("record_run", dag_id=ti.dag_id, run_id=ti.run_id, **quality_of(entry))


def _run(dag_run, state: str) -> None:
    if not _is_stream(dag_run.dag_id):
        return
    conf = dag_run.conf or {}
    _write(
        "record_run",
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=state,
        delivery_id=conf.get("delivery") if isinstance(conf, dict) else None,
        queued_at=dag_run.queued_at,
        started_at=dag_run.start_date,
        ended_at=dag_run.end_date if state != "running" else None,
    )


@hookimpl
def on_dag_run_running(dag_run, msg):
    _run(dag_run, "running")


@hookimpl
def on_dag_run_success(dag_run, msg):
    _run(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run, msg):
    _run(dag_run, "failed")
