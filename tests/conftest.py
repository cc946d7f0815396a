"""The real embedded stack shared by the integration and browser tests: Airflow standalone (scheduler, triggerer,
LocalExecutor, SQLite), a local S3 API over HTTP and the SMTP sink, on free ports in a throw-away state folder,
started and stopped by the same code as `make up` / `make down`. Started on first use, once per session."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mediaflow.airflow_api import AirflowApi
from mediaflow.devstack import Stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    env = {
        "MEDIAFLOW_STACK_DIR": str(root / "state"),
        "MEDIAFLOW_OUT_DIR": str(root / "out"),
        "MEDIAFLOW_AIRFLOW_PORT": str(_free_port()),
        "MEDIAFLOW_S3_PORT": str(_free_port()),
        "MEDIAFLOW_SMTP_PORT": str(_free_port()),
        # test streams beside the real ones: sla_drill (SLAs of seconds), batch_drill (the 300-delivery batch)
        "MEDIAFLOW_EXTRA_STREAMS": str(Path(__file__).parent / "integration" / "streams"),
        "MEDIAFLOW_SLA_CHECK_S": "2",  # the SLA watcher looks every 2 s
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    st = Stack.from_env()
    try:
        st.up()
        yield st
    finally:
        st.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def s3(stack):
    return stack.s3_client()


@pytest.fixture(scope="session")
def api(stack):
    return AirflowApi(stack.api_url, "admin", stack.password())
