"""DAG integrity: the DAG folder parses, and every value-stream DAG is shaped the way operations rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaflow.spec import SpecError, load_spec, load_specs

PROJECT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT / "dags"
STREAMS_FOLDER = PROJECT / "include" / "streams"
SPEC_NAMES = sorted(p.stem for p in STREAMS_FOLDER.glob("*.yaml"))
DAG_IDS = [f"value_stream__{name}" for name in SPEC_NAMES]
RISKY_OPERATORS = {
    "IngestOperator",
    "TranscodeOperator",
    "LocalizeOperator",
    "PublishOperator",
}  # touch S3 / run ffmpeg
GROUPS = ("ingest", "transcode", "localize", "compliance", "review", "publish")


@pytest.fixture(params=DAG_IDS)
def dag(request, dagbag):
    assert request.param in dagbag.dags, f"{request.param} not in DagBag (have {sorted(dagbag.dags)})"
    return dagbag.dags[request.param]


def test_dag_folder_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{f}:\n{e}" for f, e in dagbag.import_errors.items())
    assert dagbag.size() >= 1


def test_one_dag_per_spec_file(dagbag):
    assert len(SPEC_NAMES) >= 2
    assert sorted(d for d in dagbag.dag_ids if d.startswith("value_stream__")) == sorted(DAG_IDS)
    assert sorted(d for d in dagbag.dag_ids if not d.startswith("value_stream__")) == [
        "alert_outbox",
        "audience_feedback",
        "default_posters",
        "nightly_content_batch",
        "value_stream_metrics",
    ]
    for dag_id in DAG_IDS:
        assert dagbag.dags[dag_id].fileloc == str(DAGS_FOLDER / "value_streams.py")


def test_dag_metadata(dag):
    name = dag.dag_id.removeprefix("value_stream__")
    assert "value-stream" in dag.tags and name in dag.tags
    assert dag.owner and dag.owner != "airflow", "owner must be a real team, not Airflow's default"
    assert all(t.owner != "airflow" for t in dag.tasks)
    assert dag.doc_md and dag.doc_md.strip()
    assert name in dag.doc_md, "doc_md describes this stream"
    assert dag.schedule is None, "value streams are triggered per delivery, never on a schedule"
    assert dag.catchup is False


def test_dag_params_form(dag):
    from airflow.sdk.definitions.param import ParamValidationError  # noqa: PLC0415

    assert {"delivery", "priority"} <= set(dag.params.keys())
    priority = dag.params.get_param("priority")
    assert priority.schema["enum"] == ["low", "normal", "high", "urgent"]
    assert priority.value == "normal"
    for ok in ("low", "urgent"):
        assert priority.resolve(ok) == ok
    with pytest.raises(ParamValidationError):
        priority.resolve("asap")

    delivery = dag.params.get_param("delivery")
    for ok in ("bbb-s01e01", "s3://landing/vendor/x/d1/"):
        assert delivery.resolve(ok) == ok
    for bad in ("", "../x", "a b"):
        with pytest.raises(ParamValidationError):
            delivery.resolve(bad)


def test_tasks_that_touch_storage_or_ffmpeg_retry(dag):
    risky = [t for t in dag.tasks if t.operator_name in RISKY_OPERATORS or t.task_id == "outcome"]
    kinds = {t.operator_name for t in risky}
    assert RISKY_OPERATORS <= kinds, f"expected one of each of {sorted(RISKY_OPERATORS)}, found {sorted(kinds)}"
    assert "outcome" in {t.task_id for t in risky}
    for t in risky:
        assert t.retries >= 2, f"{t.task_id} ({type(t).__name__}) has retries={t.retries}"
        assert t.retry_delay.total_seconds() > 0


def test_stage_groups_run_in_order(dag):
    groups = dag.task_group.get_task_group_dict()
    for g in GROUPS:
        assert g in groups, f"task group {g!r} missing (have {sorted(groups)})"
    members = {g: {t.task_id for t in dag.tasks if t.task_group and t.task_group.group_id == g} for g in GROUPS}
    assert all(members.values()), members

    def upstream_all(task_id):
        return dag.get_task(task_id).get_flat_relative_ids(upstream=True)

    for earlier, later in zip(GROUPS, GROUPS[1:], strict=False):
        for t in members[later]:
            assert members[earlier] & upstream_all(t), f"{t} does not wait for the {earlier} group"
        for t in members[earlier]:
            assert not (members[later] & upstream_all(t)), f"{t} ({earlier}) depends on the {later} group"
    # the whole ingest group (incl. the accepted gate) precedes transcode
    transcode_up = set().union(*(upstream_all(t) for t in members["transcode"]))
    assert members["ingest"] <= transcode_up


def test_route_decides_what_runs_after_ingest(dag):
    """Rejected: nothing after ingest runs. Sidecar-only: localize and publish without transcode."""
    route = dag.get_task("ingest.route")
    assert "Branch" in type(route).__name__
    assert {t.task_id for t in route.downstream_list} >= {
        "transcode.transcode_ladder",
        "localize.localize_locale",
        "publish.publish_channels",
    }
    for task_id in ("localize.localize_locale", "publish.publish_channels"):
        assert dag.get_task(task_id).trigger_rule == "none_failed_min_one_success", task_id


def test_localize_maps_one_task_per_locale(dag):
    localize = dag.get_task("localize.localize_locale")
    assert type(localize).__name__ == "MappedOperator"
    assert "item.locale" in localize.map_index_template


def test_outcome_is_recorded_whatever_happened(dag):
    outcome = dag.get_task("outcome")
    assert outcome.trigger_rule == "all_done"
    upstream = outcome.get_flat_relative_ids(upstream=True)
    assert {"ingest.ingest_delivery", "publish.publish_channels"} <= upstream
    assert dag.get_task("outcome").downstream_list == []


MEDIA_TASKS = {
    "ingest.ingest_delivery",
    "transcode.transcode_ladder",
    "localize.localize_locale",
    "compliance.loudness",
    "compliance.technical_qc",
}  # every task that runs ffmpeg/ffprobe


def test_media_work_takes_a_media_slot_and_nothing_else_does(dag):
    """Admission control: every ffmpeg-heavy task waits for a slot of the media pool (one per core); a title's
    light hand-offs (S3 copies, checks without ffmpeg, API calls, outcome) never wait behind another's ffmpeg."""
    from mediaflow.capacity import MEDIA_POOL, capacity  # noqa: PLC0415

    in_pool = {t.task_id for t in dag.tasks if t.pool == MEDIA_POOL}
    assert in_pool == MEDIA_TASKS
    assert {t.pool for t in dag.tasks if t.task_id not in MEDIA_TASKS} == {"default_pool"}
    assert dag.get_task("transcode.transcode_ladder").pool_slots == capacity().transcode_slots
    assert dag.max_active_runs == capacity().max_active_runs  # the rest wait queued in Airflow


def test_a_title_further_along_goes_first(dag):
    """Where tasks wait for a slot, weights rise along the stream (weight_rule upstream): a started title finishes
    before a new one starts; the SLA watcher stays first, the background DAGs (weight 1) last."""
    from types import SimpleNamespace  # noqa: PLC0415

    from airflow.task.priority_strategy import validate_and_load_priority_weight_strategy  # noqa: PLC0415

    # the weight the scheduler gives each task instance, by the task's own rule
    weights = {t.task_id: validate_and_load_priority_weight_strategy(t.weight_rule).get_weight(SimpleNamespace(task=t))
               for t in dag.tasks}  # fmt: skip
    assert (
        weights["ingest.ingest_delivery"] < weights["transcode.transcode_ladder"] < weights["compliance.technical_qc"]
    )
    assert weights["localize.localize_locale"] < weights["compliance.loudness"] < weights["publish.publish_channels"]
    assert 1 < min(weights.values()) and max(w for t, w in weights.items() if t != "sla_watch") < 1000


def test_dag_files_parse_without_heavy_imports():
    """Each DAG file, parsed alone in a fresh interpreter as the DAG processor does, imports none of pandas,
    great_expectations, boto3 (each costs a parse 0.3 s to seconds of CPU): those are imported by tasks."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "heavy = ('pandas', 'great_expectations', 'boto3', 'botocore')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "print(json.dumps({'dags': len(bag.dags), 'errors': list(bag.import_errors), 'before': before,\n"
        "                  'heavy': [m for m in heavy if m in sys.modules]}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")]),
    }
    for path in sorted(DAGS_FOLDER.glob("*.py")):
        proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        assert found["dags"] >= 1 and found["errors"] == [], (path.name, found)
        assert found["before"] == [], f"the check is void: {found['before']} loaded before parsing"
        assert found["heavy"] == [], f"parsing {path.name} imports {found['heavy']}"


def test_assets_are_the_ones_airflow_would_make():
    """The Assets are declared without Airflow's URI normaliser (it imports boto3); each equals the Asset Airflow's
    own constructor makes from the same name and URI."""
    from airflow.sdk import Asset  # noqa: PLC0415

    from mediaflow_airflow.assets import ALL, declared  # noqa: PLC0415

    for asset in ALL:
        assert asset == Asset(name=asset.name, uri=asset.uri), asset
        assert asset.group == "asset" and asset.extra == {}
    for bad in (
        "s3://mediaflow-landing/deliveries/",
        "S3://bucket/x",
        "s3:///no-bucket",
        "no-scheme",
        "x://netloc-only",
    ):
        with pytest.raises(ValueError, match="not a normalised URI"):
            declared(name="x", uri=bad)


def test_dag_serializes_for_the_scheduler(dag):
    from airflow.serialization.serialized_objects import DagSerialization  # noqa: PLC0415

    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert restored.dag_id == dag.dag_id
    assert sorted(restored.task_ids) == sorted(dag.task_ids)
    assert restored.get_task("transcode.transcode_ladder").pool == "media"


def test_dag_follows_its_spec(dag):
    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    for rung in spec.ladder:
        assert f"{rung.height}p @ {rung.video_kbps} kb/s" in dag.doc_md
    for op in (t for t in dag.tasks if t.operator_name in RISKY_OPERATORS):
        value_stream = op.partial_kwargs["value_stream"] if hasattr(op, "partial_kwargs") else op.value_stream
        assert value_stream == spec.name


def test_broken_spec_fails_naming_the_file(tmp_path):
    # A broken spec in include/streams makes the DAG file fail at parse time; the message must name the file.
    good = (STREAMS_FOLDER / "news_clip.yaml").read_text()
    bad = tmp_path / "news_clip.yaml"
    bad.write_text(good.replace("{height: 360,", "{height: 361,"))
    assert bad.read_text() != good
    with pytest.raises(SpecError) as err:
        load_spec(bad)
    assert str(bad) in str(err.value) and "ladder[1].height" in str(err.value)


def test_review_branches_follow_the_spec_policy(dag):
    """Each branch picks automatic approval or a person; the person's task is Airflow's HITL ApprovalOperator."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator  # noqa: PLC0415

    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    for branch in ("editorial", "legal", "qc"):
        policy = dag.get_task(f"review.{branch}_policy")
        assert {t.task_id for t in policy.downstream_list} == {f"review.{branch}_approval"}
        approval = dag.get_task(f"review.{branch}_approval")
        assert isinstance(approval, ApprovalOperator)
        assert approval.response_timeout.total_seconds() == spec.review_timeout_s
        assert approval.defaults == ["Reject" if spec.review_default == "reject" else "Approve"]
        assert "publish.publish_channels" in {t.task_id for t in approval.downstream_list}
    checks = [t for t in dag.tasks if t.task_id.startswith("compliance.")]
    assert sorted(t.task_id for t in checks) == [
        "compliance.loudness",
        "compliance.metadata",
        "compliance.rights",
        "compliance.technical_qc",
    ]
    assert all(t.retries >= 2 for t in checks)


def test_stage_slas_are_watched_by_a_task_outside_the_stages(dag):
    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    watch = dag.get_task("sla_watch")
    assert type(watch).__name__ == "StageSlaWatchOperator"
    assert watch.upstream_list == [] and watch.downstream_list == []  # never held up by, never holding up, the stages
    assert watch.slas_s == spec.stage_slas_s and watch.owners == list(spec.owners)
    assert watch.priority_weight >= 1000  # starts before the stages it watches


def test_lead_time_sla_is_a_deadline_alert_on_the_run(dag):
    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.interval.total_seconds() == spec.lead_time_sla_s
    assert alert.callback.kwargs["owners"] == list(spec.owners)
    assert alert.callback.path.endswith("notifiers.lead_time_missed")


def test_a_task_that_fails_for_good_mails_the_owners(dag):
    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    for task in dag.tasks:
        callbacks = (
            task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        )
        notifiers = [c for c in callbacks if type(c).__name__ == "TaskFailureNotifier"]
        assert len(notifiers) == 1, task.task_id
        assert list(notifiers[0].to) == list(spec.owners)


def test_only_the_plugin_module_is_loaded_as_a_plugin():
    """plugins/.airflowignore keeps Airflow from importing the mediaflow_airflow package a second time."""
    from airflow._shared.module_loading import find_path_from_directory  # noqa: PLC0415

    files = [Path(p).relative_to(PROJECT / "plugins").as_posix()
             for p in find_path_from_directory(str(PROJECT / "plugins"), ".airflowignore", "glob") if p.endswith(".py")]  # fmt: skip
    assert files == ["mediaflow_plugin.py"]
    import mediaflow_plugin  # noqa: PLC0415

    assert mediaflow_plugin.MediaflowPlugin.listeners[0].__name__ == "mediaflow_airflow.listener"


def test_trigger_form_fields_have_titles_and_descriptions(dag):
    assert list(dag.params.keys())[:4] == ["delivery", "priority", "locales", "reviewer"]
    for name in dag.params.keys():
        schema = dag.params.get_param(name).schema
        assert schema.get("title") and dag.params.get_param(name).description, f"param {name}: title and description"


def test_trigger_form_locales_subset(dag):
    from airflow.sdk.definitions.param import ParamValidationError  # noqa: PLC0415

    locales = dag.params.get_param("locales")
    assert locales.value == []  # empty = every locale of the delivery
    assert locales.schema["items"]["type"] == "string"  # the UI renders a one-per-line text box
    for ok in ([], None, ["es-ES"], ["es-ES", "pt-BR", "fr", "es-419", "zh-Hant-TW"]):
        assert locales.resolve(ok) == ok
    for bad in (["es_ES"], ["../etc"], ["english"], "es-ES", [""], ["es-ES", "es-ES"]):
        with pytest.raises(ParamValidationError):
            locales.resolve(bad)
    ingest = dag.get_task("ingest.ingest_delivery")
    assert "locales" in ingest.template_fields and ingest.locales == "{{ params.locales }}"


def test_trigger_form_reviewer_override(dag):
    from airflow.sdk.definitions.param import ParamValidationError  # noqa: PLC0415

    reviewer = dag.params.get_param("reviewer")
    assert reviewer.value is None  # empty = the spec's reviewers
    for ok in (None, "", "admin", "jane.doe"):
        assert reviewer.resolve(ok) == ok
    for bad in ("a b", "-x", 5):
        with pytest.raises(ParamValidationError):
            reviewer.resolve(bad)


def test_bad_trigger_values_are_refused_with_a_message_naming_the_param(dag):
    """What the Trigger form and POST .../dagRuns answer: the API server validates the serialized DAG's params."""
    from airflow.exceptions import ParamValidationError  # noqa: PLC0415
    from airflow.serialization.serialized_objects import DagSerialization  # noqa: PLC0415

    params = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params
    base = {"delivery": "bbb-s01e01", "priority": "high", "locales": ["es-ES"], "reviewer": "admin"}
    assert params.deep_merge(base).validate() == base
    for field, bad in (("delivery", "../etc"), ("priority", "asap"), ("locales", ["es_ES"]), ("reviewer", "a b")):
        with pytest.raises(ParamValidationError) as err:
            params.deep_merge({**base, field: bad}).validate()
        assert field in str(err.value) and str(bad).strip("[]'") in str(err.value)


@pytest.mark.parametrize("reviewer, expected", [("jane", ["jane"]), (None, None), ("", None)])
def test_reviewer_override_assigns_the_human_review(dag, monkeypatch, reviewer, expected):
    """assigned_users is not a template field of the HITL operators: ReviewApprovalOperator sets it from the run's
    params when the task runs (here the base operator's execute, which writes the HITL request, is stubbed)."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator  # noqa: PLC0415

    spec = load_specs(STREAMS_FOLDER)[dag.dag_id.removeprefix("value_stream__")]
    seen = []
    monkeypatch.setattr(ApprovalOperator, "execute", lambda self, context: seen.append(self.assigned_users))
    approval = dag.get_task("review.legal_approval")
    approval.execute({"params": {"delivery": "x", "reviewer": reviewer}})
    names = expected or list(spec.reviewers)
    assert seen == [[{"id": n, "name": n} for n in names] or None]


def test_nightly_content_batch_is_scheduled_on_its_cron_and_on_landing(dagbag):
    dag = dagbag.dags["nightly_content_batch"]
    assert dag.catchup is False and dag.max_active_runs == 1
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert timetable.timetable.expression == "0 2 * * *" and "UTC" in str(timetable.timetable.timezone)
    assert [(a.name, a.uri) for a in timetable.asset_condition.objects] == [
        ("mediaflow_landing", "s3://mediaflow-landing/deliveries")
    ]
    order = ["find_pending", "validate_manifests", "quarantine_invalid", "trigger_runs"]
    assert set(order) == set(dag.task_ids)
    assert dag.get_task("validate_manifests").upstream_task_ids == {"find_pending"}
    assert dag.get_task("trigger_runs").upstream_task_ids == {"find_pending", "validate_manifests"}
    assert dag.params.get_param("max_runs").value == 500
    assert "mediaflow_landing" in dag.doc_md and "manifest_suite.json" in dag.doc_md


def test_value_stream_metrics_runs_hourly_and_when_a_run_ends(dagbag):
    dag = dagbag.dags["value_stream_metrics"]
    assert dag.catchup is False and dag.max_active_runs == 1
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule" and timetable.timetable.expression == "0 * * * *"
    assert [a.name for a in timetable.asset_condition.objects] == ["mediaflow_ledger"]
    assert dag.get_task("validate_metrics").upstream_task_ids == {"compute_metrics"}
    assert dag.get_task("publish_report").upstream_task_ids == {"compute_metrics", "validate_metrics"}
    assert "publish_report" in dag.get_task("send_digest").upstream_task_ids
    assert all(t.priority_weight == 1 and t.weight_rule == "absolute" for t in dag.tasks), "titles go first"
    # every value-stream run's outcome is what updates the Asset
    for dag_id in DAG_IDS:
        assert [o.name for o in dagbag.dags[dag_id].get_task("outcome").outlets] == ["mediaflow_ledger"]


def test_alert_outbox_sweeps_every_ten_minutes(dagbag):
    dag = dagbag.dags["alert_outbox"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.expression == "*/10 * * * *" and dag.task_ids == ["resend_stranded"]


def test_audience_feedback_runs_daily_and_when_viewing_events_land(dagbag):
    dag = dagbag.dags["audience_feedback"]
    assert dag.catchup is False and dag.max_active_runs == 1
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule" and timetable.timetable.expression == "30 1 * * *"
    assert [a.name for a in timetable.asset_condition.objects] == ["mediaflow_viewing_events"]
    assert dag.get_task("compute_feedback").upstream_task_ids == {"ingest_events"}
    assert [o.name for o in dag.get_task("compute_feedback").outlets] == ["mediaflow_feedback"]
    assert all(t.priority_weight == 1 and t.weight_rule == "absolute" for t in dag.tasks), "titles go first"
    assert dag.owner == "audience-insights" and "include/gx/feedback/events.json" in dag.doc_md


def test_default_posters_reacts_to_the_feedback_asset(dagbag):
    """Something downstream listens to audience_feedback: each poster A/B winner is republished by one mapped task."""
    dag = dagbag.dags["default_posters"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["mediaflow_feedback"]
    setter = dag.get_task("set_default_poster")
    assert type(setter).__name__ == "MappedOperator" and setter.upstream_task_ids == {"ab_winners"}
    assert "poster_changes" in dag.doc_md and "publish lease" in dag.doc_md
    assert all(t.priority_weight == 1 and t.weight_rule == "absolute" for t in dag.tasks), "titles go first"
    assert dag.owner == "audience-insights"
