"""The glossary is complete: every DAG and task the DagBag holds is named in mediaflow.names, and nothing more."""

from __future__ import annotations

from mediaflow import names
from mediaflow.spec import load_specs


def test_every_dag_id_is_named(dagbag):
    streams = [names.value_stream_dag_id(s) for s in load_specs()]
    assert sorted(dagbag.dag_ids) == sorted([*names.SERVICE_DAGS, *streams])


def test_every_task_id_is_named(dagbag):
    for dag_id in dagbag.dag_ids:
        tasks = sorted(t.task_id for t in dagbag.dags[dag_id].tasks)
        if names.stream_of(dag_id) is not None:
            assert tasks == sorted(names.VALUE_STREAM_TASK_IDS), dag_id
            groups = {g for g in dagbag.dags[dag_id].task_group.get_task_group_dict() if g}
            assert groups == set(names.STAGE_ORDER), dag_id
        else:
            assert tasks == sorted(names.TASKS_OF[dag_id]), dag_id


def test_ffmpeg_tasks_take_the_media_pool(dagbag):
    pools = {t.pool for d in dagbag.dags.values() for t in d.tasks}
    assert pools == {names.MEDIA_POOL, names.DEFAULT_POOL}
