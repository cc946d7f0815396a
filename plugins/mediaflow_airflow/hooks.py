"""Hooks: object storage over S3Hook, ffmpeg through the domain's runner (mediaflow.ffrun), the stage ledger."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import BaseHook

from mediaflow import ffrun
from mediaflow.capacity import media_priority
from mediaflow.store import transfer_config, with_retries

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".vtt": "text/vtt"}


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(Path(key).suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def cache_args(key: str, cache_control: str | None) -> dict:
    """put/copy arguments that set Cache-Control (and the Content-Type again: a copy that replaces the metadata
    keeps none of the source's)."""
    return {"CacheControl": cache_control, "ContentType": content_type(key)} if cache_control else {}


class MediaStoreHook(S3Hook):
    """The mediaflow Store interface on an S3 connection (any S3 API: AWS, MinIO, moto).

    Every call is retried on transient errors (endpoint down, connection cut, throttling, 5xx) with exponential
    backoff and jitter for MEDIAFLOW_S3_RETRY_BUDGET_S, then raises StorageUnavailable naming the call: the task
    fails with that reason and Airflow's own retries take over."""

    def list(self, bucket: str, prefix: str) -> dict[str, dict]:
        def listing() -> dict[str, dict]:
            out = {}
            for page in self.get_conn().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    out[obj["Key"]] = {
                        "size": obj["Size"],
                        "etag": obj["ETag"].strip('"'),
                        "last_modified": obj["LastModified"].isoformat(),
                    }
            return out

        return with_retries(listing, f"list s3://{bucket}/{prefix}")

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        return with_retries(lambda: self.list_prefixes(bucket_name=bucket, prefix=prefix, delimiter="/"),
                            f"list s3://{bucket}/{prefix}")  # fmt: skip

    def download(self, bucket: str, key: str, path: str) -> None:
        with_retries(lambda: self.get_conn().download_file(bucket, key, path, Config=transfer_config()),
                     f"download s3://{bucket}/{key}")  # fmt: skip

    def upload(self, path: str, bucket: str, key: str) -> None:
        with_retries(lambda: self.get_conn().upload_file(path, bucket, key, ExtraArgs={"ContentType": content_type(key)},
                                                         Config=transfer_config()),
                     f"upload to s3://{bucket}/{key}")  # fmt: skip

    def put_bytes(self, data: bytes, bucket: str, key: str, *, cache_control: str | None = None) -> None:
        with_retries(lambda: self.get_conn().put_object(Bucket=bucket, Key=key, Body=data,
                                                        **cache_args(key, cache_control)),
                     f"write s3://{bucket}/{key}")  # fmt: skip

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return with_retries(lambda: self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read(),
                            f"read s3://{bucket}/{key}")  # fmt: skip

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             cache_control: str | None = None) -> None:  # fmt: skip
        # managed copy: multipart for sources over 5 GB; new metadata needs MetadataDirective=REPLACE
        extra = {"MetadataDirective": "REPLACE", **cache_args(dst_key, cache_control)} if cache_control else None
        with_retries(lambda: self.get_conn().copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key,
                                                  ExtraArgs=extra),
                     f"copy s3://{src_bucket}/{src_key} to s3://{dst_bucket}/{dst_key}")  # fmt: skip

    def delete(self, bucket: str, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            with_retries(lambda batch=batch: self.get_conn().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}),
                         f"delete {len(batch)} objects in s3://{bucket}")  # fmt: skip


class FFmpegHook(BaseHook):
    """Runs an ffmpeg argv through the domain's one runner (mediaflow.ffrun): its own process group, a timeout, media
    priority, each line of its log in the task log; a failure raises FFmpegError quoting ffmpeg's error lines.
    `send_sigterm` (an operator's on_kill) ends the running command's whole process group.

    The task process drops to media priority too before ffmpeg starts: the task process is a fork for this one
    task, and what it does after ffmpeg (uploading what ffmpeg wrote) is media work too."""

    def __init__(self, *, timeout_s: float | None = None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.runner = ffrun.Runner(on_line=lambda line: self.log.info("%s", line))

    def run(self, argv: list[str], *, purpose: str | None = None, timeout: float | None = None) -> None:
        media_priority(pid=os.getpid())()  # the task's main thread: the ladder's groups call from threads of their own
        self.log.info("Running command: %s", argv)
        self.runner.run(argv, purpose=purpose, timeout=timeout or self.timeout_s, check=True)

    def send_sigterm(self) -> None:
        """End the running ffmpeg's process group (nothing when none runs)."""
        if self.runner.kill():
            self.log.info("ffmpeg's process group ended")


class LedgerHook(BaseHook):
    """The stage ledger's database, chosen by a connection: `postgres` (the embedded stack's PostgreSQL,
    docker-compose's ledger-db) or `sqlite` (host = file path); `extra.sqlalchemy_url` overrides both. Never Airflow's
    metadata DB."""

    conn_name_attr = "ledger_conn_id"
    default_conn_name = "mediaflow_ledger"
    conn_type = "mediaflow_ledger"
    hook_name = "Mediaflow stage ledger"

    def __init__(self, ledger_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.ledger_conn_id = ledger_conn_id

    @staticmethod
    def url_of(conn) -> str:
        extra = conn.extra_dejson or {}
        if extra.get("sqlalchemy_url"):
            return extra["sqlalchemy_url"]
        if conn.conn_type == "sqlite":
            return f"sqlite:///{conn.host}"
        if conn.conn_type in ("postgres", "postgresql"):
            from sqlalchemy.engine import URL

            return URL.create("postgresql+psycopg2", username=conn.login, password=conn.password, host=conn.host,
                              port=conn.port, database=conn.schema).render_as_string(hide_password=False)  # fmt: skip
        raise ValueError(f"connection {conn.conn_id!r}: conn_type {conn.conn_type!r} is not a ledger database "
                         "(use sqlite or postgres, or set extra.sqlalchemy_url)")  # fmt: skip

    def url(self) -> str:
        return self.url_of(self.get_connection(self.ledger_conn_id))

    def get_conn(self):
        from mediaflow.ledger import Ledger

        return Ledger(self.url())


class AirflowApiHook(BaseHook):
    """Airflow's own REST API, as a service account (an `http` connection: host, port, login, password; extra
    `base_path` when Airflow is served under a path of its host, AIRFLOW__API__BASE_URL), through Airflow's official
    client (apache-airflow-client); the batch starts value-stream runs through it, as any client would."""

    conn_name_attr = "api_conn_id"
    default_conn_name = "mediaflow_airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API (mediaflow)"

    def __init__(self, api_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.api_conn_id = api_conn_id

    def get_conn(self, *, threads: int = 8):
        """A `mediaflow_airflow.runs_api.RunsApi`: its token is fetched at the first call, so an API server that is
        down fails that call (which the batch retries within its budget), not the task."""
        from mediaflow_airflow.runs_api import RunsApi

        conn = self.get_connection(self.api_conn_id)
        path = str(conn.extra_dejson.get("base_path") or "").strip("/")
        base = (
            f"{conn.schema or 'http'}://{conn.host}"
            + (f":{conn.port}" if conn.port else "")
            + (f"/{path}" if path else "")
        )
        return RunsApi(base, conn.login, conn.password, threads=threads)
