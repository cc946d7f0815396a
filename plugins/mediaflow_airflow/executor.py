"""LocalExecutor whose worker processes start with what every task imports already loaded.

Airflow 3's LocalExecutor forks its worker processes from the scheduler when it starts; each task is a fork of a
worker that parses its DAG file again. Without this, every task imports boto3, the amazon provider and our
plugins anew: about 1 s of CPU per task on this project (`make bench` measures it as the DAG-parse time of
value_streams.py), paid on the critical path between two tasks and on cores ffmpeg could use. Importing those
modules once in the scheduler, before the workers fork, makes each task's parse a few milliseconds; the pages are
shared copy-on-write, so the memory is paid once. DAG files themselves are still parsed fresh for every task.

Its workers also run below the control plane: each is reniced to MEDIAFLOW_TASK_NICE (mediaflow.capacity, 5) as
it is forked, so every task process (a fork of a worker, via the task supervisor) and the Python work in it
yields the CPU to the scheduler, DAG processor, triggerer and API server (niceness 0), and ffmpeg runs lower still
(MEDIAFLOW_MEDIA_NICE, 10). Airflow 3.3's LocalExecutor starts each worker in `_spawn_worker` (a
multiprocessing.Process with target `_run_worker`, forked from the scheduler); the override renices the new pid.

Enabled by the embedded stack (devstack: AIRFLOW__CORE__EXECUTOR). A change to plugins/ or include/ code then
needs a scheduler restart to reach tasks, as Airflow's own plugins do. See docs/performance.md.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from airflow.executors.local_executor import LocalExecutor

from mediaflow.capacity import capacity, lower_priority

log = logging.getLogger(__name__)

# What the DAG files and the task runner import (library code with no side effects at import): never a module that
# opens a connection or starts a thread at import time, since the workers are forks of this process.
PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.sdk.execution_time.supervisor",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.hitl",
    "mediaflow_airflow.value_stream",
    "mediaflow_airflow.content_batch",
    "mediaflow_airflow.value_stream_metrics",
    "mediaflow_airflow.alert_outbox",
    "mediaflow_airflow.hooks",
    "mediaflow_airflow.operators",
    "mediaflow.flow",
    # Great Expectations (with pandas) takes ~4 s of CPU and ~250 MB to import; compliance.metadata and the batch's
    # validate_manifests import it in every run. Imported here, it is paid once and its pages are shared.
    "pandas",
    "great_expectations",
    "great_expectations.data_context.types.base",
)


def preload(names: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import each module; one that fails is logged and skipped (a task importing it later reports the error)."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as e:  # noqa: BLE001 - a preload must never stop the scheduler
            log.warning("preload of %s failed: %s", name, e)
    return loaded


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor, with PRELOAD imported before its workers fork, and its workers at task priority."""

    def start(self) -> None:
        began = time.monotonic()
        loaded = preload()
        log.info("preloaded %d modules for task processes in %.2fs", len(loaded), time.monotonic() - began)
        self._task_nice = capacity().task_nice
        super().start()

    def _spawn_worker(self) -> None:
        before = set(self.workers)
        super()._spawn_worker()
        for pid in set(self.workers) - before:
            # the worker is still waiting for its first task: the task processes it forks inherit this
            lower_priority(pid, nice=getattr(self, "_task_nice", 0))
            log.debug("worker %s at niceness %s", pid, os.getpriority(os.PRIO_PROCESS, pid))
