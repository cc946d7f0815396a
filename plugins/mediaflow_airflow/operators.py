"""Thin operators: templated arguments, a hook for I/O, one call into the mediaflow library.

Every DAG file imports this module when it parses, so it imports only what the operators' constructors need:
the hooks (boto3 through S3Hook) and the library's media code are imported in `execute`, where they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator

from mediaflow import names, trigger_form
from mediaflow.results import HumanAnswer
from mediaflow.spec import load_specs
from mediaflow.store import Buckets

if TYPE_CHECKING:
    from mediaflow_airflow.hooks import FFmpegHook


class _StreamOperator(BaseOperator):
    def __init__(self, *, value_stream: str, aws_conn_id: str = "aws_default", **kwargs) -> None:
        super().__init__(**kwargs)
        self.value_stream = value_stream
        self.aws_conn_id = aws_conn_id

    def _spec(self):
        return load_specs()[self.value_stream]


class IngestOperator(_StreamOperator):
    """Fetch a delivery from landing, validate it, decode-test the source; bad input -> rejected + quarantined.

    `locales` (the trigger form's subset; None or empty = all) keeps only those caption/audio locales.
    """

    template_fields: Sequence[str] = ("delivery", "locales")

    def __init__(self, *, delivery: str, locales: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delivery = delivery
        self.locales = locales

    def execute(self, context) -> dict[str, Any]:
        from mediaflow import batch, decisions, flow
        from mediaflow.store import DELIVERIES, delivery_location
        from mediaflow_airflow.hooks import MediaStoreHook

        specs = load_specs()
        store, buckets = MediaStoreHook(aws_conn_id=self.aws_conn_id), Buckets.from_env()
        try:
            bucket, prefix, delivery_id = delivery_location(self.delivery, buckets)
        except ValueError:
            bucket = prefix = delivery_id = None  # ingest rejects it with the reason
        if decisions.takes_delivery(bucket=bucket, prefix=prefix, delivery_id=delivery_id, landing=buckets.landing,
                                    deliveries=DELIVERIES):  # fmt: skip
            # taken by this run, however it was started: a later batch must not start it again
            batch.mark_taken_by_run(store, buckets, delivery_id, dag_id=context["ti"].dag_id, run_id=context["run_id"])
        result = flow.ingest(
            store,
            buckets,
            delivery=self.delivery,
            spec=specs[self.value_stream],
            known_streams=set(specs),
            run_id=context["run_id"],
            locales=trigger_form.wanted_locales(self.locales),
        )
        self.log.info("delivery %s: %s %s", result["delivery_id"], result["status"], "; ".join(result["reasons"]))
        if result.get("locales_skipped"):
            self.log.info("locales left out (not in the run's subset %s): %s", self.locales, result["locales_skipped"])
        return result


class TaskProgress:
    """The library's progress callback for one running task: a log line, and the latest report kept as the task's
    XCom `progress` (mediaflow.names.PROGRESS_KEY, read by `make run` through the REST API while the task runs).
    At most every MEDIAFLOW_TASK_PROGRESS_S seconds (default 10), and at once when a phase starts or ends.

    Called from transfer threads too: one at a time. A report that cannot be kept is logged, never fails the task.
    """

    def __init__(self, ti, log, *, every_s: float | None = None) -> None:
        import os
        import threading

        self.ti, self.log = ti, log
        self.every_s = float(os.environ.get("MEDIAFLOW_TASK_PROGRESS_S") or 10) if every_s is None else every_s
        self._lock = threading.Lock()
        self._last: tuple | None = None  # (stage, phase, done) last kept
        self._last_at = float("-inf")

    def __call__(self, report: dict) -> None:
        import time

        from mediaflow import progress
        from mediaflow.stages import iso_z

        with self._lock:
            now = time.monotonic()
            key = (report.get("stage"), report.get("phase"), report.get("done"))
            if self._last == key:
                return
            edge = (self._last or (None, None))[:2] != key[:2] or report.get("done") in (0, report.get("total"))
            if not edge and now - self._last_at < self.every_s:
                return
            self._last, self._last_at = key, now
            self.log.info("progress: %s", progress.describe(report))
            try:
                self.ti.xcom_push(key=names.PROGRESS_KEY,
                                  value={**report, "updated_at": iso_z(datetime.now(UTC))})  # fmt: skip
            except Exception as e:  # noqa: BLE001 - progress is a courtesy; the work goes on
                self.log.warning("progress not kept: %s", e)


class TranscodeOperator(_StreamOperator):
    """The stream's ladder to HLS: one ffmpeg per group of rungs (one decode each), the groups at once."""

    template_fields: Sequence[str] = ("ingested",)

    def __init__(self, *, ingested: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.hook: FFmpegHook | None = None

    def execute(self, context) -> dict[str, Any]:
        from mediaflow import flow
        from mediaflow.ffrun import budget_s
        from mediaflow_airflow.hooks import FFmpegHook, MediaStoreHook

        self.hook = FFmpegHook(timeout_s=budget_s(self.ingested["source"]["duration_s"]))
        return flow.transcode(
            MediaStoreHook(aws_conn_id=self.aws_conn_id),
            Buckets.from_env(),
            ingested=self.ingested,
            spec=self._spec(),
            run_id=context["run_id"],
            run_ffmpeg=self.hook.run,
            kill_ffmpeg=self.hook.send_sigterm,  # the ladder's groups run at once: a failing one ends the others
            progress=TaskProgress(context["ti"], self.log),
        )

    def on_kill(self) -> None:
        if self.hook:
            self.hook.send_sigterm()  # ends ffmpeg's whole process group


class LocalizeOperator(_StreamOperator):
    """One caption or audio locale to its HLS rendition; a bad locale is rejected, never fails the title."""

    template_fields: Sequence[str] = ("ingested", "item")

    def __init__(self, *, ingested: Any, item: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.item = item
        self.hook: FFmpegHook | None = None

    def execute(self, context) -> dict[str, Any]:
        from mediaflow import flow
        from mediaflow.ffrun import budget_s
        from mediaflow_airflow.hooks import FFmpegHook, MediaStoreHook

        self.hook = FFmpegHook(timeout_s=budget_s(self.ingested["source"]["duration_s"]))
        result = flow.localize_locale(
            MediaStoreHook(aws_conn_id=self.aws_conn_id),
            Buckets.from_env(),
            ingested=self.ingested,
            item=self.item,
            spec=self._spec(),
            run_id=context["run_id"],
            run_ffmpeg=self.hook.run,
        )
        self.log.info("locale %s (%s): %s %s", result["locale"], result["kind"], result["status"], result["reasons"])
        return result

    def on_kill(self) -> None:
        if self.hook:
            self.hook.send_sigterm()


class _CheckOperator(_StreamOperator):
    """A compliance check over the ingested title; a failed check is a finding returned, never a task failure.

    Subclasses implement check(store, buckets, context) with one call into mediaflow.compliance.
    """

    template_fields: Sequence[str] = ("ingested",)

    def __init__(self, *, ingested: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested

    def execute(self, context) -> dict[str, Any]:
        from mediaflow_airflow.hooks import MediaStoreHook

        result = self.check(MediaStoreHook(aws_conn_id=self.aws_conn_id), Buckets.from_env(), context)
        self.log.info("%s: %s %s", result["check"], "passed" if result["passed"] else "FAILED", result["problems"])
        return result


class RightsCheckOperator(_CheckOperator):
    """Rights windows per (channel, territory) from the rights catalog, at the time of the check."""

    def check(self, store, buckets, context):
        from mediaflow import compliance

        return compliance.check_rights(store, buckets, ingested=self.ingested, at=datetime.now(UTC))


class LoudnessCheckOperator(_CheckOperator):
    """EBU R128 loudness and true peak of every audio rendition to be published."""

    template_fields: Sequence[str] = ("ingested", "transcode_task_id", "localize_task_id")

    def __init__(self, *, transcode_task_id: str, localize_task_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.transcode_task_id = transcode_task_id
        self.localize_task_id = localize_task_id

    def check(self, store, buckets, context):
        from mediaflow import compliance

        ti = context["ti"]
        return compliance.check_loudness(
            store, buckets, ingested=self.ingested, spec=self._spec(),
            transcoded=ti.xcom_pull(task_ids=self.transcode_task_id, default=None),
            localized=mapped_results(ti, self.localize_task_id),
        )  # fmt: skip


class TechnicalQCOperator(_CheckOperator):
    """Black frames, frozen video and silence in the source (ffmpeg detectors, the spec's thresholds), and each
    rung's VMAF (scored by transcode) against the stream's quality floor."""

    template_fields: Sequence[str] = ("ingested", "transcode_task_id")

    def __init__(self, *, transcode_task_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.transcode_task_id = transcode_task_id

    def check(self, store, buckets, context):
        from mediaflow import compliance

        transcoded = context["ti"].xcom_pull(task_ids=self.transcode_task_id, default=None)
        return compliance.check_technical_qc(store, buckets, ingested=self.ingested, spec=self._spec(),
                                             transcoded=transcoded)  # fmt: skip


class MetadataQualityOperator(_CheckOperator):
    """The manifest and probe facts against the versioned Great Expectations suite."""

    def check(self, store, buckets, context):
        from mediaflow import compliance

        return compliance.check_metadata(store, buckets, ingested=self.ingested, known_streams=sorted(load_specs()),
                                         run_id=context["run_id"])  # fmt: skip


class PublishOperator(_StreamOperator):
    """Publish to the distribution bucket: segments, then playlists, master last.

    Transcode and localize results are pulled here rather than templated: either may have been skipped
    (a sidecar-only delivery has no transcode; a title without sidecars has no locales).
    """

    template_fields: Sequence[str] = ("ingested", "transcode_task_id", "localize_task_id", "rights_task_id")

    def __init__(self, *, ingested: Any, transcode_task_id: str, localize_task_id: str, rights_task_id: str,
                 **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.ingested = ingested
        self.transcode_task_id = transcode_task_id
        self.localize_task_id = localize_task_id
        self.rights_task_id = rights_task_id

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mediaflow import compliance, flow
        from mediaflow.ledger import Ledger
        from mediaflow_airflow.hooks import LedgerHook, MediaStoreHook

        ti = context["ti"]
        asset_id = self.ingested["asset_id"]
        refused = compliance.refused_reviews(
            [ti.xcom_pull(task_ids=names.policy_id(b), key=names.REVIEW_KEY, default=None) for b in names.BRANCHES]
        )
        if refused:  # an automatic rejection (the quality gate) skipped the person: nothing goes out
            raise AirflowSkipException("; ".join(refused))
        # One publish of an asset at a time, across workers: two deliveries of it in flight never interleave their
        # copies (a torn title); the second waits, then publishes only if it is the newer delivery.
        with Ledger(LedgerHook().url()).lease(
            f"publish:{asset_id}", f"{ti.dag_id}/{ti.run_id}",
            on_wait=lambda other: self.log.info("asset %s is being published by %s: waiting for it", asset_id, other),
        ) as waited_s:  # fmt: skip
            result = flow.publish(
                MediaStoreHook(aws_conn_id=self.aws_conn_id),
                Buckets.from_env(),
                ingested=self.ingested,
                transcoded=ti.xcom_pull(task_ids=self.transcode_task_id, default=None),
                localized=mapped_results(ti, self.localize_task_id),
                rights_check=ti.xcom_pull(task_ids=self.rights_task_id, default=None),
                progress=TaskProgress(ti, self.log),
            )
        return {**result, "lease_wait_s": round(waited_s, 3)}


class DefaultPosterOperator(BaseOperator):
    """Republish a title's poster A/B winner as its default poster (`poster.jpg` on every live channel), under the
    asset's publish lease like PublishOperator, and record the change in the ledger. Idempotent."""

    template_fields: Sequence[str] = ("asset_id", "variant", "decision", "decided_by")

    def __init__(self, *, asset_id: str, variant: str, decision: Any = None, decided_by: str | None = None,
                 aws_conn_id: str = "aws_default", **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.variant = variant
        self.decision = decision
        self.decided_by = decided_by
        self.aws_conn_id = aws_conn_id

    def execute(self, context) -> dict[str, Any]:
        from mediaflow import posters
        from mediaflow.ledger import Ledger
        from mediaflow.stages import iso_z
        from mediaflow_airflow.hooks import LedgerHook, MediaStoreHook

        ti, ledger = context["ti"], Ledger(LedgerHook().url())
        with ledger.lease(f"publish:{self.asset_id}", f"{ti.dag_id}/{ti.run_id}"):
            result = posters.set_default_poster(
                MediaStoreHook(aws_conn_id=self.aws_conn_id), Buckets.from_env(), asset_id=self.asset_id,
                variant=self.variant, decision=self.decision, decided_by=self.decided_by,
                now=iso_z(datetime.now(UTC)),
            )  # fmt: skip
            recorded = next((c["variant"] for c in reversed(ledger.poster_changes(self.asset_id))), None)
            if posters.to_record(result, recorded):
                ledger.record_poster_change(
                    asset_id=self.asset_id, variant=self.variant, previous=result["previous"],
                    channels=result["channels"], p_value=(self.decision or {}).get("p_value"),
                    decided_by=self.decided_by, dag_id=ti.dag_id, run_id=ti.run_id,
                )  # fmt: skip
        self.log.info("asset %s: default poster %s: %s %s", self.asset_id, self.variant, result["status"],
                      result["reason"] or ", ".join(result["channels"]))  # fmt: skip
        return result


def mapped_results(ti, task_id: str) -> list[dict]:
    """Every map index's return value of a mapped task; [] when it was skipped or expanded to nothing.

    xcom_pull gives a lone dict when the task expanded to a single index, a sequence otherwise.
    """
    pulled = ti.xcom_pull(task_ids=task_id, default=None)
    if pulled is None:
        return []
    if isinstance(pulled, dict):
        return [pulled]
    return [r for r in pulled if r]


class ReviewApprovalOperator(ApprovalOperator):
    """Airflow's HITL ApprovalOperator that also records the answer (who, what, comment) as XCom `review`.

    On Reject the base operator skips downstream before its return value reaches XCom; the outcome still needs
    the reviewer and the comment.

    The run's `reviewer` param, when set, replaces the spec's reviewers as the only user who may answer
    (`assigned_users` is not a template field of the HITL operators, so it is set here from the run's params).
    """

    def __init__(self, *, spec_reviewers: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec_reviewers = list(spec_reviewers)

    def execute(self, context):
        reviewer = (context.get("params") or {}).get("reviewer")
        self.assigned_users = trigger_form.review_assignees(reviewer, self.spec_reviewers)
        self.log.info("review assigned to %s", [u["name"] for u in self.assigned_users or []] or "anyone")
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            user = event.get("responded_by_user") or {}
            context["ti"].xcom_push(key=names.REVIEW_KEY, value=HumanAnswer(
                chosen=(event.get("chosen_options") or [""])[0],
                by=user.get("name") or user.get("id") or "",
                comment=(event.get("params_input") or {}).get("comment", ""),
            ).to_dict())  # fmt: skip
        return super().execute_complete(context, event)


class StageSlaWatchOperator(BaseOperator):
    """Watches this run's stages against the spec's SLAs from the triggerer (StageSlaTrigger) and mails the owners
    while a stage is still over its SLA. Defers at once, so it holds a worker slot only for a moment."""

    def __init__(self, *, value_stream: str, slas_s: dict[str, float], owners: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.value_stream, self.slas_s, self.owners = value_stream, dict(slas_s), list(owners)

    def execute(self, context) -> None:
        import os

        from mediaflow_airflow.notifiers import ui_url
        from mediaflow_airflow.triggers import StageSlaTrigger

        # alert latency is at most one check interval plus delivery; the bound is 60 s
        poll_s = float(os.environ.get("MEDIAFLOW_SLA_CHECK_S", "20"))
        self.defer(
            trigger=StageSlaTrigger(dag_id=context["dag"].dag_id, run_id=context["run_id"], value_stream=self.value_stream,
                                    slas_s=self.slas_s, owners=self.owners, ui_url=ui_url(), poll_s=poll_s),
            method_name="execute_complete",
        )  # fmt: skip

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "SLA alerts sent: %s; still pending: %s", event.get("sent") or "none", event.get("pending") or "none"
        )
        return event
