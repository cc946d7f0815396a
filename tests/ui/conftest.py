"""A real embedded stack for the browser and REST-client tests, as tests/integration/conftest.py starts one:
Airflow standalone (scheduler, LocalExecutor, SQLite), the S3 API and the SMTP sink on free ports in a throw-away
state folder, started and stopped by the same code as `make up` / `make down`. It has its own stack, so runs
triggered here never mix with the integration batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mediaflow.airflow_api import AirflowApi
from mediaflow.devstack import Stack

CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, headless, with nothing phoning home; Playwright's own browser download is never used
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-stack")
    env = {
        "MEDIAFLOW_STACK_DIR": str(root / "state"),
        "MEDIAFLOW_OUT_DIR": str(root / "out"),
        "MEDIAFLOW_AIRFLOW_PORT": str(_free_port()),
        "MEDIAFLOW_S3_PORT": str(_free_port()),
        "MEDIAFLOW_SMTP_PORT": str(_free_port()),
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
def api(stack):
    return AirflowApi(stack.api_url, "admin", stack.password())


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium; make deps does it as root)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, base_url=stack.api_url)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def shots(stack):
    """Where the test's screenshots go: <stack out dir>/ui/<name>.png (out/ is git-ignored)."""
    folder = stack.out_dir / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
