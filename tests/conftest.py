"""The real embedded stack shared by the integration and browser tests: PostgreSQL (Airflow's metadata DB and the
ledger), Airflow standalone (scheduler, triggerer, LocalExecutor), a local S3 API over HTTP and the SMTP sink, on
free ports in a throw-away state folder, started and stopped by the same code as `make up` / `make down` (its
PostgreSQL data is deleted afterwards). Started on first use, once per session. Airflow's side
reaches the S3 API through a TCP fault gate, and the content batch reaches the REST API through an HTTP one.

A test marked `last` runs after every other test of the session (the secrets check reads what they all left)."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fault_gate import FaultGate
from http_fault_gate import HttpFaultGate
from mediaflow.store import Buckets
from mediaflow_airflow.api_client import AirflowApi
from mediaflow_dev import bench, runner, samples
from mediaflow_dev.devstack import Stack


def pytest_configure(config):
    config.addinivalue_line("markers", "last: runs after every other test of the session")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)  # stable: the rest keep their order


_HANDED_OUT: set[int] = set()


def _free_port() -> int:
    """A free TCP port for a stack service: any the OS gives, or, when MEDIAFLOW_TEST_PORTS names a range
    ("19100-19199": sessions sharing a machine keep to their own), the first free one in it not handed out yet."""
    span = os.environ.get("MEDIAFLOW_TEST_PORTS", "").strip()
    if not span:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    low, _, high = span.partition("-")
    for port in range(int(low), int(high or low) + 1):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port left in MEDIAFLOW_TEST_PORTS={span}")


_GATE: list[FaultGate] = []
_API_GATE: list[HttpFaultGate] = []


@pytest.fixture(scope="session")
def free_port():
    """Hands out free ports as the session stack's are (within MEDIAFLOW_TEST_PORTS when set), for a stack of a test's
    own."""
    return _free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    s3_port = _free_port()
    # Airflow's side reaches the S3 API through a fault gate, so a test can take storage down (test_storage_outage)
    gate = FaultGate(s3_port)
    _GATE.append(gate)
    airflow_port = _free_port()
    # the content batch reaches the REST API through an HTTP fault gate, so a test can make one trigger fail
    api_gate = HttpFaultGate(airflow_port)
    _API_GATE.append(api_gate)
    env = {
        "MEDIAFLOW_STACK_DIR": str(root / "state"),
        "MEDIAFLOW_OUT_DIR": str(root / "out"),
        "MEDIAFLOW_AIRFLOW_PORT": str(airflow_port),
        "MEDIAFLOW_API_CLIENT_PORT": str(api_gate.port),
        "MEDIAFLOW_TRIGGER_RETRY_BUDGET_S": "20",  # a trigger that keeps failing is left pending after 20 s
        "MEDIAFLOW_S3_PORT": str(s3_port),
        "MEDIAFLOW_S3_CLIENT_PORT": str(gate.port),
        "MEDIAFLOW_S3_RETRY_BUDGET_S": "40",  # rides out a 30 s outage; a longer one fails the call
        "MEDIAFLOW_SMTP_PORT": str(_free_port()),
        "MEDIAFLOW_PG_PORT": str(_free_port()),
        # test streams beside the real ones: sla_drill (SLAs of seconds), batch_drill (the 300-delivery batch)
        "MEDIAFLOW_EXTRA_STREAMS": str(Path(__file__).parent / "integration" / "streams"),
        "MEDIAFLOW_SLA_CHECK_S": "2",  # the SLA watcher looks every 2 s
        "MEDIAFLOW_TASK_PROGRESS_S": "2",  # a transcode or publish keeps its progress every 2 s (test_long_title_progress)
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    st = Stack.from_env()
    try:
        st.up()
        _let_the_catch_up_batch_end(st)
        yield st
    finally:
        st.down()
        st.postgres.remove()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """The stack's PostgreSQL alone (the same server, started and stopped by the same code as `make up`), for tests
    of what runs on it without Airflow (the ledger). `postgres.new_database()` gives each test an empty database."""
    st = Stack(state_dir=tmp_path_factory.mktemp("pg") / "state", out_dir=tmp_path_factory.getbasetemp() / "pg-out",
               airflow_port=0, s3_port=0, smtp_port=0, pg_port=_free_port())  # fmt: skip
    st._start_postgres()
    try:
        yield _Databases(st)
    finally:
        st.down()
        st.postgres.remove()


class _Databases:
    def __init__(self, stack: Stack):
        self.stack = stack
        self._n = 0

    def new_database(self) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        self._n += 1
        name = f"test_{self._n}"
        assert self.stack.postgres.sql(f"CREATE DATABASE {name}") is not None
        return self.stack.pg_url(name)


def _let_the_catch_up_batch_end(st: Stack, timeout_s: float = 240) -> None:
    """As the nightly batch DAG appears, the scheduler starts its latest interval's run (catchup=False still runs
    that one). A delivery a test uploads while that run looks would be taken by it: a second run of the title
    beside the test's own. Tests start once it has ended."""
    api = AirflowApi(st.api_url, "admin", st.password())
    api.wait_for_dags(["nightly_content_batch"])
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        runs = api.request("GET", "/api/v2/dags/nightly_content_batch/dagRuns?limit=100")["dag_runs"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            return
        if not runs and time.monotonic() - began > 60:
            return  # none came: nothing to wait for
        time.sleep(2)
    raise AssertionError(f"the content batch's catch-up run did not end within {timeout_s:.0f}s")


NIGHT_N = 64  # the issue: at least 60 at once
NIGHT_HEIGHTS = {360: 6, 480: 3, 720: 2, 1080: 1}  # mostly small, a few 1080p


@pytest.fixture(scope="session")
def night(stack, api, tmp_path_factory):
    """A night at the scale users run it, on the real stack, once per session (test_night checks its outcomes,
    test_forecast_on_stack forecasts it from its ledger): 64 generated deliveries dropped at once (mixed codecs and
    containers from 360p to 1080p, captions, extra audio, broken uploads, titles for a person;
    samples.generate_night, seed 17) and run as `make run DELIVERIES=DIR` runs them: one nightly batch, one
    value-stream run per valid delivery, waited for until every run ended or waits on a person."""
    folder = tmp_path_factory.mktemp("night") / "deliveries"
    expected = samples.generate_night(folder, NIGHT_N, seed=17, seconds=(2.0, 4.0), heights=NIGHT_HEIGHTS,
                                      broken_share=0.125, distinct=12)  # fmt: skip
    roots = [p for p in stack.status().values() if p]
    kills_before = bench.dag_processor_kills(stack)
    cpu0, began, began_at = bench.tree_cpu_s(roots), time.monotonic(), datetime.now(UTC)
    runs = runner.submit(stack, folder)  # uploads, runs the batch (raises when the batch run failed), maps the runs
    done = runner.wait(stack, runs)  # no time limit: waits while the night progresses (stall detection: runner.wait)
    summary = runner.summarize(stack, runs, done)
    wall, cpu = time.monotonic() - began, bench.tree_cpu_s(roots) - cpu0
    counts: dict[str, int] = {}
    for a in summary["assets"]:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    print(f"\nnight of {NIGHT_N} deliveries: {wall:.0f} s wall, {cpu:.0f} CPU s in the stack ({cpu / NIGHT_N:.1f} "
          f"per delivery, ffmpeg included), {counts}")  # fmt: skip
    marker = next(runner._marker(stack.s3_client(), Buckets.from_env(), d.delivery_id) for d in expected
                  if d.status != "rejected")  # fmt: skip
    return {"expected": expected, "summary": summary, "done": done, "runs": runs, "batch_run_id": marker["batch_run_id"],
            "kills": bench.dag_processor_kills(stack) - kills_before, "began_at": began_at}  # fmt: skip


@pytest.fixture(scope="session")
def s3_gate(stack) -> FaultGate:
    """The gate between Airflow's side and the S3 API (the test's own `s3` client goes around it)."""
    yield _GATE[0]
    _GATE[0].up()


@pytest.fixture(scope="session")
def api_gate(stack) -> HttpFaultGate:
    """The HTTP gate between the content batch's API connection and Airflow's REST API."""
    yield _API_GATE[0]
    _API_GATE[0].clear()


@pytest.fixture(scope="session")
def s3(stack):
    return stack.s3_client()


@pytest.fixture(scope="session")
def api(stack):
    return AirflowApi(stack.api_url, "admin", stack.password())


# Debian's chromium, headless, with nothing phoning home; Playwright's own browser download is never used
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright, one per test module (Playwright's sync API cannot run two at once,
    so a module's browser is closed before the next module starts its own)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium; make test does it as root)"
        )
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, stack):
    """A fresh browser context (no cookies, not logged in) on the stack's UI."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, base_url=stack.api_url)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
