"""Thin operators: templated arguments, a hook for I/O, one call into the mediaflow library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from mediaflow import flow
from mediaflow.spec import load_specs
from mediaflow.store import Buckets

from mediaflow_airflow.hooks import FFmpegHook, MediaStoreHook


class _StreamOperator(BaseOperator):
    def __init__(self, *, value_stream: str, aws_conn_id: str = "aws_default", **kwargs) -> None:
        super().__init__(**kwargs)
        self.value_stream = value_stream
        self.aws_conn_id = aws_conn_id

    def _spec(self):
        return load_specs()[self.value_stream]


class IngestOperator(_StreamOperator):
    """Fetch a delivery from landing, validate it, decode-test the source; bad input -> rejected + quarantined."""

    template_fields: Sequence[str] = ("delivery",)

    def __init__(self, *, delivery: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delivery = delivery

    def execute(self, context) -> dict[str, Any]:
        specs = load_specs()
        result = flow.ingest(
            MediaStoreHook(aws_conn_id=self.aws_conn_id),
            Buckets.from_env(),
            delivery=self.delivery,
            spec=specs[self.value_stream],
            known_streams=set(specs),
            run_id=context["run_id"],
        )
        self.log.info("delivery %s: %s %s", result["delivery_id"], result["status"], "; ".join(result["reasons"]))
        return result


class TranscodeOperator(_StreamOperator):
    """One ffmpeg process: decode once, encode every rung of the stream's ladder to HLS."""

    template_fields: Sequence[str] = ("ingested",)

    def __init__(self, *, ingested: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.hook: FFmpegHook | None = None

    def execute(self, context) -> dict[str, Any]:
        self.hook = FFmpegHook()
        return flow.transcode(
            MediaStoreHook(aws_conn_id=self.aws_conn_id),
            Buckets.from_env(),
            ingested=self.ingested,
            spec=self._spec(),
            run_id=context["run_id"],
            run_ffmpeg=self.hook.run,
        )

    def on_kill(self) -> None:
        if self.hook:
            self.hook.send_sigterm()  # ends ffmpeg's whole process group


class PublishOperator(_StreamOperator):
    """Copy the packaged title to the distribution bucket: segments, then playlists, master last."""

    template_fields: Sequence[str] = ("ingested", "transcoded")

    def __init__(self, *, ingested: Any, transcoded: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested
        self.transcoded = transcoded

    def execute(self, context) -> list[dict]:
        return flow.publish(
            MediaStoreHook(aws_conn_id=self.aws_conn_id),
            Buckets.from_env(),
            ingested=self.ingested,
            transcoded=self.transcoded,
        )
