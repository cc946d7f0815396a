"""One name per idea: every DAG id, task id, task group (stage), pool and XCom key the project uses.

This module is the glossary. Everything else imports these names; a task id spelled as a string anywhere else is a
bug waiting (rename a task in the factory and the ledger stops recording its outcome). tests/unit/test_names.py
fails on any DAG id or task id written as a literal outside this file.

The values are contracts: the ledger's rows, out/summary.json, alert keys and UI/REST URLs carry them. Change a
value only together with a migration of what has been recorded under it. Plain Python, stdlib only.
"""

from __future__ import annotations

# ---------------------------------------------------------------- DAG ids
# A value stream is one DAG per stream spec (include/streams/<stream>.yaml), named by this prefix and the spec's
# name; the ledger, the listener and the dashboard recognise a value-stream DAG by the prefix alone.
VALUE_STREAM_DAG_PREFIX = "value_stream__"

# The DAGs around the value streams, one of each.
CONTENT_BATCH_DAG = "nightly_content_batch"  # new deliveries validated as one batch, one value-stream run each
METRICS_DAG = "value_stream_metrics"  # flow metrics over the ledger, the report and the daily digest
FEEDBACK_DAG = "audience_feedback"  # viewing events -> retention, recommendations, poster A/B, batch priorities
POSTERS_DAG = "default_posters"  # each poster A/B winner becomes its title's default poster
OUTBOX_DAG = "alert_outbox"  # alerts still pending after their run are sent again
SERVICE_DAGS = (CONTENT_BATCH_DAG, METRICS_DAG, FEEDBACK_DAG, POSTERS_DAG, OUTBOX_DAG)


def value_stream_dag_id(stream: str) -> str:
    """The DAG id of a value stream: `series_episode` -> `value_stream__series_episode`."""
    return f"{VALUE_STREAM_DAG_PREFIX}{stream}"


def stream_of(dag_id: str) -> str | None:
    """The inverse of value_stream_dag_id: the stream a DAG runs, None for a DAG that is no value stream."""
    return dag_id[len(VALUE_STREAM_DAG_PREFIX) :] if dag_id.startswith(VALUE_STREAM_DAG_PREFIX) else None


# ---------------------------------------------------------------- stages (the value-stream DAG's TaskGroups)
# A stage is a TaskGroup of the value-stream DAG: the ledger files each task attempt under the group in its task
# id, stage SLAs (the spec's `stages:`) and summary.json's `stages` use these names. A spec may add stages of its own.
INGEST = "ingest"
TRANSCODE = "transcode"
LOCALIZE = "localize"
COMPLIANCE = "compliance"
REVIEW = "review"
PUBLISH = "publish"
STAGE_ORDER = (INGEST, TRANSCODE, LOCALIZE, COMPLIANCE, REVIEW, PUBLISH)  # the order a title flows through them

GROUP_SEPARATOR = "."  # Airflow joins a TaskGroup's id and a task's own id with it


def task_id(group: str, task: str) -> str:
    """A task's full id, as Airflow and the ledger see it: `task_id("ingest", "route")` -> `ingest.route`."""
    return f"{group}{GROUP_SEPARATOR}{task}"


def stage_of(full_task_id: str) -> str | None:
    """The stage (TaskGroup) a task id is in, None for a task outside the stages (sla_watch, outcome)."""
    group, sep, _ = full_task_id.partition(GROUP_SEPARATOR)
    return group if sep else None


# ---------------------------------------------------------------- value-stream tasks
# Outside the stages: the run's SLA watcher (first to start, from the triggerer) and its last task, which records
# the outcome (summary.json entry, the ledger row's quality half).
SLA_WATCH = "sla_watch"
OUTCOME = "outcome"

# ingest: fetch and validate the delivery; route it (full, sidecars only, or rejected); list its locales.
INGEST_DELIVERY = "ingest_delivery"
ROUTE = "route"
LOCALES = "locales"
INGEST_ID = task_id(INGEST, INGEST_DELIVERY)
ROUTE_ID = task_id(INGEST, ROUTE)
LOCALES_ID = task_id(INGEST, LOCALES)

# transcode: one ffmpeg, the HLS ladder. localize: one mapped task per caption/audio locale.
TRANSCODE_LADDER = "transcode_ladder"
LOCALIZE_LOCALE = "localize_locale"
TRANSCODE_ID = task_id(TRANSCODE, TRANSCODE_LADDER)
LOCALIZE_ID = task_id(LOCALIZE, LOCALIZE_LOCALE)

# compliance: one task per check; a check's name is its task id, and the key of its result wherever results are
# gathered (the outcome's `compliance`, the review policy's inputs).
RIGHTS = "rights"
LOUDNESS = "loudness"
TECHNICAL_QC = "technical_qc"
METADATA = "metadata"
CHECKS = (RIGHTS, LOUDNESS, TECHNICAL_QC, METADATA)


def check_id(check: str) -> str:
    """The full task id of a compliance check: `rights` -> `compliance.rights`."""
    return task_id(COMPLIANCE, check)


CHECK_IDS = tuple(check_id(c) for c in CHECKS)

# review: one branch per review kind, each fed by its checks. `<branch>_policy` decides (approves on the spot when
# the policy allows it), `<branch>_approval` is the person's HITL task when it does not.
EDITORIAL = "editorial"
LEGAL = "legal"
QC = "qc"
BRANCHES = (EDITORIAL, LEGAL, QC)
CHECKS_OF = {EDITORIAL: (METADATA,), LEGAL: (RIGHTS,), QC: (LOUDNESS, TECHNICAL_QC)}
POLICY_SUFFIX = "_policy"
APPROVAL_SUFFIX = "_approval"


def policy_task(branch: str) -> str:
    """A review branch's deciding task, inside the review group: `legal` -> `legal_policy`."""
    return f"{branch}{POLICY_SUFFIX}"


def approval_task(branch: str) -> str:
    """A review branch's HITL task, inside the review group: `legal` -> `legal_approval`."""
    return f"{branch}{APPROVAL_SUFFIX}"


def policy_id(branch: str) -> str:
    """`legal` -> `review.legal_policy`."""
    return task_id(REVIEW, policy_task(branch))


def approval_id(branch: str) -> str:
    """`legal` -> `review.legal_approval`."""
    return task_id(REVIEW, approval_task(branch))


def branch_of_approval(full_task_id: str) -> str:
    """The inverse of approval_id: `review.legal_approval` -> `legal`."""
    return full_task_id.partition(GROUP_SEPARATOR)[2].removesuffix(APPROVAL_SUFFIX)


# publish: copy the title to every channel where a rights window is open.
PUBLISH_CHANNELS = "publish_channels"
PUBLISH_ID = task_id(PUBLISH, PUBLISH_CHANNELS)

# Every task of a value-stream DAG by its full id (what the ledger's task_id column holds).
VALUE_STREAM_TASK_IDS = (
    SLA_WATCH,
    INGEST_ID, ROUTE_ID, LOCALES_ID,
    TRANSCODE_ID,
    LOCALIZE_ID,
    *CHECK_IDS,
    *(policy_id(b) for b in BRANCHES), *(approval_id(b) for b in BRANCHES),
    PUBLISH_ID,
    OUTCOME,
)  # fmt: skip

# ---------------------------------------------------------------- tasks of the other DAGs
# nightly_content_batch: the pending deliveries, their manifests validated as one batch, the invalid ones to
# quarantine, one value-stream run per valid one.
FIND_PENDING = "find_pending"
VALIDATE_MANIFESTS = "validate_manifests"
QUARANTINE_INVALID = "quarantine_invalid"
TRIGGER_RUNS = "trigger_runs"
# value_stream_metrics: the metrics tables, their validation, the HTML report, the daily digest.
COMPUTE_METRICS = "compute_metrics"
VALIDATE_METRICS = "validate_metrics"
PUBLISH_REPORT = "publish_report"
SEND_DIGEST = "send_digest"
# audience_feedback: new viewing-event drops through their suite, then the figures and priorities.
INGEST_EVENTS = "ingest_events"
COMPUTE_FEEDBACK = "compute_feedback"
# default_posters: the A/B winners, then one mapped task per title.
AB_WINNERS = "ab_winners"
SET_DEFAULT_POSTER = "set_default_poster"
# alert_outbox
RESEND_STRANDED = "resend_stranded"

TASKS_OF = {
    CONTENT_BATCH_DAG: (FIND_PENDING, VALIDATE_MANIFESTS, QUARANTINE_INVALID, TRIGGER_RUNS),
    METRICS_DAG: (COMPUTE_METRICS, VALIDATE_METRICS, PUBLISH_REPORT, SEND_DIGEST),
    FEEDBACK_DAG: (INGEST_EVENTS, COMPUTE_FEEDBACK),
    POSTERS_DAG: (AB_WINNERS, SET_DEFAULT_POSTER),
    OUTBOX_DAG: (RESEND_STRANDED,),
}  # the task ids of each DAG that is no value stream

# ---------------------------------------------------------------- pools
# ffmpeg/ffprobe-heavy tasks take slots of the media pool (one per core; mediaflow.capacity sizes it); every
# other task runs in Airflow's own default pool.
MEDIA_POOL = "media"
DEFAULT_POOL = "default_pool"

# ---------------------------------------------------------------- XCom keys
RETURN_VALUE = "return_value"  # Airflow's own: what a task returns
PROGRESS_KEY = "progress"  # a long task's latest progress report (mediaflow.progress), read by `make run`
REVIEW_KEY = "review"  # a review branch's decision: the policy's automatic approval, or the person's answer
