"""DAG factory: one value-stream DAG per stream spec (`value_stream__<name>`)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, Param, TaskGroup, TriggerRule, task

from mediaflow import compliance, decisions, trigger_form
from mediaflow.capacity import capacity
from mediaflow.names import (
    BRANCHES,
    CHECK_IDS,
    CHECKS,
    COMPLIANCE,
    INGEST,
    INGEST_DELIVERY,
    INGEST_ID,
    LOCALES,
    LOCALIZE,
    LOCALIZE_ID,
    LOCALIZE_LOCALE,
    LOUDNESS,
    MEDIA_POOL,
    METADATA,
    OUTCOME,
    PUBLISH,
    PUBLISH_CHANNELS,
    PUBLISH_ID,
    REVIEW,
    REVIEW_KEY,
    RIGHTS,
    ROUTE,
    SLA_WATCH,
    TECHNICAL_QC,
    TRANSCODE,
    TRANSCODE_ID,
    TRANSCODE_LADDER,
    approval_id,
    approval_task,
    check_id,
    policy_id,
    policy_task,
)
from mediaflow.spec import StreamSpec, format_duration
from mediaflow_airflow.assets import LEDGER
from mediaflow_airflow.notifiers import ReviewRequestNotifier, TaskFailureNotifier, lead_time_missed
from mediaflow_airflow.operators import (
    IngestOperator,
    LocalizeOperator,
    LoudnessCheckOperator,
    MetadataQualityOperator,
    PublishOperator,
    ReviewApprovalOperator,
    RightsCheckOperator,
    StageSlaWatchOperator,
    TechnicalQCOperator,
    TranscodeOperator,
    mapped_results,
)

PRIORITIES = ["low", "normal", "high", "urgent"]
# the tasks that start each stage decisions.route sends a delivery to
STAGE_TASKS = {TRANSCODE: [TRANSCODE_ID], LOCALIZE: [LOCALIZE_ID], COMPLIANCE: list(CHECK_IDS), PUBLISH: [PUBLISH_ID]}
# Tasks touch S3 and ffmpeg: infrastructure trouble is retried with backoff (the spec's `retries`, by default 2,
# 10 s then 20 s); bad input never raises.
# Priority: a task's weight is the sum of its own and its upstream tasks' (weight_rule "upstream"), so where tasks
# wait for a slot (the media pool, parallelism) a title further along goes first: finish titles before starting new
# ones. The batch starts urgent titles first, so they are the ones further along. Every weight is above the
# background DAGs' 1 and below the SLA watcher's 1000.
DEFAULT_ARGS = {"owner": "media-ops", "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=5),
                "priority_weight": 10, "weight_rule": "upstream"}  # fmt: skip
# ffmpeg/ffprobe-heavy tasks take a slot of the media pool (mediaflow.capacity); the rest run in default_pool
MEDIA = {"pool": MEDIA_POOL}


def _doc(spec: StreamSpec) -> str:
    rungs = ", ".join(f"{r.height}p @ {r.video_kbps} kb/s" for r in spec.ladder)
    slas = "\n".join(f"| {stage} | {format_duration(s)} |" for stage, s in spec.stage_slas_s.items())
    return f"""### Value stream `{spec.name}`
Delivery -> **ingest** (manifest, fixity, probe, decode test) -> **transcode** (one ffmpeg, HLS ladder)
-> **localize** (one task per caption/audio locale: WebVTT subtitles, loudness-normalised AAC tracks)
-> **compliance** (rights windows, loudness, black/freeze/silence QC, metadata suite; in parallel)
-> **review** (editorial, legal, QC in parallel: automatic when the checks pass and the policy allows,
otherwise a person answers under *Required Actions*) -> **publish** (`<channel>/<asset_id>/` in the
distribution bucket, only where a rights window is open, master playlist last).

A delivery with only captions/audio for a published title skips transcode and adds its locales.
One bad locale is rejected on its own (owners get one email); the title publishes without it.

Trigger with a delivery id (folder under `deliveries/` in the landing bucket) or an `s3://bucket/prefix/`.
Optional: **Locales**, one BCP-47 tag per line (`es` selects every `es-*`; empty = every locale delivered), and
**Reviewer**, the Airflow user who must answer this title's human reviews (empty = the spec's reviewers).
A bad value is refused at trigger time, naming the field.
Bad input ends `rejected` with its reasons and a copy in quarantine; it never fails the run.

- Ladder: {rungs} (never upscaled)
- Loudness: {spec.loudness.target_lufs:g} LUFS, true peak {spec.loudness.true_peak_dbtp:g} dBTP
- Channels: {", ".join(spec.channels)}; owners: {", ".join(spec.owners)}
- Lead-time SLA: {format_duration(spec.lead_time_sla_s)}
- Review policy: {", ".join(f"{b} {spec.reviews.get(b, 'auto')}" for b in BRANCHES)}; a person has
  {format_duration(spec.review_timeout_s)}, then the answer is **{spec.review_default}**

| stage | SLA |
|---|---|
{slas}

Every task attempt is recorded in the stage ledger. The `sla_watch` task watches the stages from the triggerer
and mails the owners once per stage that runs past its SLA, while it still runs (or when it ends late). The
lead-time SLA is a DeadlineAlert on the run's queue time. A task that fails for good also mails the owners.

Spec file: `include/streams/{spec.name}.yaml`
"""


def trigger_params(spec: StreamSpec) -> dict[str, Param]:
    """The Trigger form: every field has a title and a description; JSON-schema refuses bad values at trigger time."""
    reviewers = ", ".join(spec.reviewers) or "anyone who may use the UI"
    return {
        "delivery": Param(
            "",
            type="string",
            minLength=1,
            pattern=trigger_form.DELIVERY_PATTERN,
            title="Delivery",
            description="Delivery id: the folder name under deliveries/ in the landing bucket (letters, digits, "
            "'.', '_', '-'; e.g. bbb-s01e01), or an s3://bucket/prefix/ holding manifest.json.",
        ),
        "priority": Param(
            "normal",
            type="string",
            enum=PRIORITIES,
            title="Priority",
            description="How urgent this title is. Kept with the run (its conf, under the run's Details).",
            values_display={"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent (ahead of the batch)"},
        ),
        "locales": Param(
            [],
            type=["array", "null"],
            items={"type": "string", "pattern": trigger_form.LOCALE_PATTERN},
            uniqueItems=True,
            title="Locales",
            description="Only these caption/audio locales, one per line as BCP-47 tags (es-ES, pt-BR, fr; 'es' "
            "selects every es-*). Empty: every locale in the delivery. A locale the delivery does not have "
            "selects nothing.",
        ),
        "reviewer": Param(
            None,
            type=["string", "null"],
            pattern=trigger_form.REVIEWER_PATTERN,
            title="Reviewer",
            description=f"Airflow user name who must answer this title's human reviews. Empty: the stream's "
            f"reviewers ({reviewers}).",
        ),
    }


def review_branch(spec: StreamSpec, branch: str, checks: dict):
    """One review branch: `<branch>_policy` decides. When the checks passed and the policy allows it, it approves
    on the spot (its decision is XCom `review`) and skips `<branch>_approval`; otherwise it follows
    `<branch>_approval`, where a person answers (Airflow's HITL ApprovalOperator, with the spec's timeout and
    default). One task for the automatic path: a title that needs no person costs no extra task per branch."""
    policy = spec.reviews.get(branch, "auto")
    outputs = {name: op.output for name, op in checks.items()}
    ask_person = approval_id(branch)

    @task.branch(task_id=policy_task(branch))
    def decide(rights: dict, loudness: dict, technical_qc: dict, metadata: dict, ti=None) -> list[str]:
        results = {RIGHTS: rights, LOUDNESS: loudness, TECHNICAL_QC: technical_qc, METADATA: metadata}
        mode, why = compliance.review_mode(branch, policy, results)
        if mode == "human":
            return [ask_person]
        if mode == "reject":  # the quality gate refused it: no person asked, publish will not run
            ti.xcom_push(key=REVIEW_KEY, value=compliance.auto_rejection(branch, why))
            return []
        ti.xcom_push(key=REVIEW_KEY, value=compliance.auto_approval(branch, why))
        return []  # approved: the person's task is skipped

    approval = ReviewApprovalOperator(
        task_id=approval_task(branch),
        subject=f"{{{{ ti.xcom_pull(task_ids='{INGEST_ID}')['asset_id'] }}}}: {branch} review ({spec.name})",
        body=(
            f"**{branch.capitalize()} review** of asset `{{{{ ti.xcom_pull(task_ids='{INGEST_ID}')['asset_id'] }}}}` "
            f"in value stream `{spec.name}`.\n\nWhy a person is asked:\n"
            "{% for t in " + repr([check_id(c) for c in compliance.CHECKS_OF[branch]]) + " %}"
            "{% for p in (ti.xcom_pull(task_ids=t) or {}).get('problems', []) %}- {{ p }}\n{% endfor %}{% endfor %}"
            f"- policy for {branch}: {policy}\n\nApprove to publish, Reject to stop it (add a comment)."
        ),
        defaults="Approve" if spec.review_default == "approve" else "Reject",
        response_timeout=timedelta(seconds=spec.review_timeout_s),
        params={"comment": Param("", type="string", title="Comment", description="Why (shown in the summary)")},
        spec_reviewers=spec.reviewers,  # or the run's `reviewer` param, set when the task runs
        assigned_users=trigger_form.review_assignees(None, spec.reviewers),
        # the owners are mailed why (check, figure, limit) and where to answer, once the request is written
        notifiers=[
            ReviewRequestNotifier(
                to=list(spec.owners),
                value_stream=spec.name,
                branch=branch,
                checks=list(compliance.CHECKS_OF[branch]),
                ingest_task=INGEST_ID,
            )
        ],
    )
    decided = decide(**outputs)
    decided >> approval
    return decided.operator, approval


# long: a DAG factory: the value stream's whole shape (groups, branches, reviews) in one place
def value_stream_dag(spec: StreamSpec) -> DAG:
    with DAG(
        dag_id=spec.dag_id,
        description=f"{spec.name}: ingest -> transcode -> localize -> compliance -> review -> publish",
        doc_md=_doc(spec),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        # admission: more runs of this stream than this wait queued in Airflow (mediaflow.capacity)
        max_active_runs=capacity().max_active_runs,
        # once per task that failed for good (Airflow calls on_failure_callback after the last retry only)
        default_args={
            **DEFAULT_ARGS,
            "retries": spec.retries,
            "retry_delay": timedelta(seconds=spec.retry_delay_s),
            "on_failure_callback": TaskFailureNotifier(to=list(spec.owners), value_stream=spec.name),
        },
        # the run's end-to-end SLA, Airflow's own DeadlineAlert; per-stage SLAs are the sla_watch task's
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(seconds=spec.lead_time_sla_s),
            callback=AsyncCallback(
                lead_time_missed,
                kwargs={"value_stream": spec.name, "owners": list(spec.owners), "sla_s": spec.lead_time_sla_s},
            ),
        ),  # fmt: skip
        tags=["value-stream", spec.name],
        params=trigger_params(spec),
        render_template_as_native_obj=True,
    ) as dag:
        # outside the stages: watches them all from the triggerer, first to start so no stage goes unwatched
        StageSlaWatchOperator(task_id=SLA_WATCH, value_stream=spec.name, slas_s=spec.stage_slas_s,
                              owners=list(spec.owners), priority_weight=1000, weight_rule="absolute")  # fmt: skip

        with TaskGroup(INGEST):
            ingested = IngestOperator(task_id=INGEST_DELIVERY, value_stream=spec.name, delivery="{{ params.delivery }}",
                                      locales="{{ params.locales }}", **MEDIA)  # fmt: skip

            @task.branch(task_id=ROUTE)
            def route(result: dict) -> list[str]:
                """Rejected: stop here (the outcome still records it). Sidecars only: no transcode (decisions.route)."""
                return [t for stage in decisions.route(result) for t in STAGE_TASKS[stage]]

            routed = route(ingested.output)

            @task(task_id=LOCALES)
            def locales(result: dict) -> list[dict]:
                """The caption and audio locales of the delivery: the localize stage maps one task over each."""
                return result.get("locales") or []

            locale_items = locales(ingested.output)
            locale_items >> routed

        with TaskGroup(TRANSCODE):
            # MEDIAFLOW_TRANSCODE_QUEUE routes transcodes to the Celery workers that listen on it (big machines; see
            # docs/scaling.md); unset, they go to Airflow's default queue like every other task
            queue = (
                {"queue": os.environ["MEDIAFLOW_TRANSCODE_QUEUE"]}
                if os.environ.get("MEDIAFLOW_TRANSCODE_QUEUE")
                else {}
            )
            transcoded = TranscodeOperator(task_id=TRANSCODE_LADDER, value_stream=spec.name, ingested=ingested.output,
                                           pool_slots=capacity().transcode_slots, **MEDIA, **queue)  # fmt: skip
        routed >> transcoded

        with TaskGroup(LOCALIZE):
            localized = LocalizeOperator.partial(
                task_id=LOCALIZE_LOCALE,
                value_stream=spec.name,
                ingested=ingested.output,
                map_index_template="{{ task.item.locale }} {{ task.item.kind }}",
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,  # runs without transcode for sidecars
                **MEDIA,
            ).expand(item=locale_items)
        [routed, transcoded] >> localized

        with TaskGroup(COMPLIANCE):
            # the checks hang off the route too, so a rejected delivery skips them whatever their trigger rule says
            common = {"value_stream": spec.name, "ingested": ingested.output,
                      "trigger_rule": TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS}  # fmt: skip
            checks = {
                RIGHTS: RightsCheckOperator(task_id=RIGHTS, **common),
                LOUDNESS: LoudnessCheckOperator(
                    task_id=LOUDNESS, transcode_task_id=TRANSCODE_ID, localize_task_id=LOCALIZE_ID, **common, **MEDIA
                ),
                TECHNICAL_QC: TechnicalQCOperator(
                    task_id=TECHNICAL_QC, transcode_task_id=TRANSCODE_ID, **common, **MEDIA
                ),
                METADATA: MetadataQualityOperator(task_id=METADATA, **common),
            }
        for upstream in (routed, transcoded, localized):
            upstream >> list(checks.values())

        with TaskGroup(REVIEW):
            reviews = [review_branch(spec, branch, checks) for branch in BRANCHES]

        with TaskGroup(PUBLISH):
            published = PublishOperator(
                task_id=PUBLISH_CHANNELS,
                value_stream=spec.name,
                ingested=ingested.output,
                transcode_task_id=TRANSCODE_ID,
                localize_task_id=LOCALIZE_ID,
                rights_task_id=check_id(RIGHTS),
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            )
        # publish hangs off the route too, so a rejected delivery skips it whatever its trigger rule says;
        # a reviewer's Reject skips it directly (ApprovalOperator skips its downstream). Never off a policy task:
        # a branch skips every direct downstream it does not follow, and publish waits on the policies through
        # their approval tasks (skipped when the checks approved).
        [routed, transcoded, localized, *[approval for _, approval in reviews]] >> published

        @task(task_id=OUTCOME, trigger_rule=TriggerRule.ALL_DONE, outlets=[LEDGER])
        def outcome(ingest_result, publish_result, **context) -> dict:
            """Record this run's outcome (published | rejected | failed); mail the owners about rejected locales."""
            from mediaflow import flow, ledger
            from mediaflow.store import Buckets, outcome_key
            from mediaflow_airflow.hooks import LedgerHook, MediaStoreHook
            from mediaflow_airflow.notifiers import mail_rejection

            ti, run_id = context["ti"], context["run_id"]
            states = ti.get_task_states(dag_id=spec.dag_id, run_ids=[run_id]).get(run_id, {})
            failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed") and t != ti.task_id)
            errors = ledger.Ledger(LedgerHook().url()).task_errors(spec.dag_id, run_id) if failed else {}
            entry = flow.outcome(
                dag_run_id=run_id,
                value_stream=spec.name,
                ingested=ingest_result,
                published=publish_result,
                failed_tasks=failed,
                task_errors=errors,
                finished_at=datetime.now(UTC),
                localized=mapped_results(ti, LOCALIZE_ID),
                reviews=[decisions.review_result(b, ti.xcom_pull(task_ids=policy_id(b), key=REVIEW_KEY, default=None),
                                                 ti.xcom_pull(task_ids=approval_id(b), key=REVIEW_KEY, default=None)) for b in BRANCHES],
                checks={c: ti.xcom_pull(task_ids=check_id(c), default=None) for c in CHECKS},
            )  # fmt: skip
            buckets = Buckets.from_env()
            MediaStoreHook().put_bytes(
                json.dumps(entry, indent=2).encode(), buckets.reports, outcome_key(spec.dag_id, run_id)
            )
            if ingest_result and ingest_result.get("asset_id"):  # the run's work objects are done with on this machine
                from mediaflow import localcache
                from mediaflow.store import work_prefix

                localcache.evict(buckets.work, work_prefix(ingest_result["asset_id"], run_id))
            mail_rejection(context, entry, owners=list(spec.owners))  # every reason: check, figure, limit
            mail = flow.locale_rejection_mail(entry, owners=list(spec.owners))
            if mail:
                from airflow.providers.smtp.notifications.smtp import SmtpNotifier

                SmtpNotifier(to=mail["to"], subject=mail["subject"], html_content=mail["html"]).notify(context)
            return entry

        outcome(ingested.output, published.output)
    return dag
