"""Security on the real stack: every route of the API server (Airflow's REST API, its UI API, the execution API, the
auth manager's app and the mediaflow plugin) refuses a request without a valid login; a browser that is not logged
in lands on the login page and sees no DAG; a read-only user reads but may neither trigger a value stream nor
answer its review; only a review's assigned user may answer it; and after the whole session no secret of the stack
(its S3 secret key, the users' passwords) is in any log, XCom, run conf, rendered template or output file.

The routes are enumerated from the running code (the API server's app as `airflow api-server` builds it, and the
plugin's FastAPI app), so a route added later is covered without touching this file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import expect

from mediaflow.store import Buckets
from mediaflow_airflow.api_client import AirflowApi, ApiError
from mediaflow_dev import runner, samples
from mediaflow_dev.devstack import PROJECT, SERVICE_USER, USERS, VIEWER

pytestmark = pytest.mark.integration

REVIEW_DAG = "value_stream__series_episode"  # legal review by a person
REVIEW_TASK = "review.legal_approval"
READ_DAG = "value_stream__news_clip"  # a DAG every stack has: GET routes are probed on it
PROBE_DAG = "mediaflow_security_probe"  # no such DAG: what a route that changes things is probed on

# Reachable without a login, each for a reason. Anything else on the API server must answer 401 (no credentials)
# and 401/403 (bad credentials). (method, route) -> why.
PUBLIC = {
    # what must be: the login, the health check, the page shell and its assets
    ("POST", "/auth/token"): "log in (user name and password -> token)",
    ("POST", "/auth/token/cli"): "log in, for the airflow CLI",
    ("GET", "/auth/static"): "the login page's assets",
    ("GET", "/auth/{rest_of_path:path}"): "the login page",
    ("GET", "/api/v2/auth/login"): "redirects to the login page",
    ("GET", "/api/v2/auth/logout"): "redirects to the login page",
    ("GET", "/api/v2/monitor/health"): "health",
    ("GET", "/execution/health"): "health of the task execution API",
    ("GET", "/execution/health/ping"): "health of the task execution API",
    ("GET", "/static"): "the UI's assets",
    ("GET", "/{rest_of_path:path}"): "the UI's page shell: it loads data from the API only after a login",
    # public by Airflow's design, with no data of this stack in them
    ("GET", "/api/v2/version"): "Airflow's version and git commit (the UI shows it before a login)",
    ("GET", "/mediaflow/static/value_streams.js"): "the dashboard's react_apps module: frames the pages, code only",
    ("GET", "/openapi.json"): "the REST API's schema",
    ("GET", "/docs"): "the REST API's schema (Swagger UI)",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI's login helper",
    ("GET", "/redoc"): "the REST API's schema (ReDoc)",
    ("GET", "/auth/openapi.json"): "the login app's schema",
    ("GET", "/auth/docs"): "the login app's schema (Swagger UI)",
    ("GET", "/auth/docs/oauth2-redirect"): "Swagger UI's login helper",
    ("GET", "/auth/redoc"): "the login app's schema (ReDoc)",
    ("GET", "/execution/openapi.json"): "the execution API's schema (404 without a version header)",
    ("GET", "/execution/docs"): "the execution API's schema (Swagger UI)",
    ("GET", "/execution/docs/oauth2-redirect"): "Swagger UI's login helper",
    ("GET", "/execution/redoc"): "the execution API's schema (ReDoc)",
    ("GET", "/execution/changelog"): "the execution API's version history",
    # refusals that are not about a login
    ("GET", "/auth/token"): "403: token without a password only in all-admins mode",
    ("GET", "/auth/token/login"): "403: only in all-admins mode",
    ("GET", "/health"): "404: moved to /api/v2/monitor/health",
    ("GET", "/api/v1/{_:path}"): "404: API v1 is gone",
    ("GET", "/api/{_:path}"): "404: no such API",
}

# Printed as JSON by a child process with the stack's environment: every (method, route) the API server serves.
ROUTES = r"""
import importlib, json
from starlette.routing import Mount, Route
from airflow.api_fastapi.app import create_app
from airflow.api_fastapi.execution_api.routes import execution_api_router

found = set()
def walk(routes, prefix):
    for r in routes:
        if isinstance(r, Mount):
            app = r.app
            if hasattr(app, "target"):  # the mediaflow plugin's lazy mount: its real app
                module, _, name = app.target.partition(":")
                app = getattr(importlib.import_module(module), name)
            if hasattr(getattr(app, "router", None), "versioned_routers"):  # Cadwyn builds these on first use
                walk(execution_api_router.routes, prefix + r.path)
            sub = getattr(app, "routes", None)
            if sub:
                walk(sub, prefix + r.path)
            else:
                found.add(("GET", prefix + r.path))  # static files
        elif isinstance(r, Route):
            for m in r.methods or ["GET"]:
                if m != "HEAD":
                    found.add((m, prefix + r.path))
walk(create_app().routes, "")
print(json.dumps(sorted(found)))
"""


# ---------------------------------------------------------------- helpers


def call(stack, method: str, path: str, *, token: str | None = None, headers: dict | None = None, body=None):
    """(status, body) of one request, with or without credentials; redirects are not followed."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"{}" if method in ("POST", "PUT", "PATCH") else None)
    req = urllib.request.Request(stack.api_url + path, method=method, data=data, headers=hdrs)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login(stack, user: str) -> str:
    status, body = call(stack, "POST", "/auth/token", body={"username": user, "password": stack.password(user)})
    assert status in (200, 201), (user, status, body[:200])
    return json.loads(body)["access_token"]


def as_user(stack, user: str) -> AirflowApi:
    return AirflowApi(stack.api_url, user, stack.password(user))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forgeries(real_token: str) -> dict[str, str]:
    """Tokens a caller could make without the server's key, from a real viewer token: the claims raised to admin
    with the viewer's signature, signed with a guessed key, and unsigned (alg none)."""
    head, claims, sig = real_token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    admin = _b64(json.dumps({**payload, "sub": "admin", "role": "admin"}).encode())
    hs512 = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    signed = _b64(hmac.new(b"secret", f"{hs512}.{admin}".encode(), hashlib.sha512).digest())
    return {"garbage": "not.a.jwt", "claims raised": f"{head}.{admin}.{sig}", "guessed key": f"{hs512}.{admin}.{signed}",
            "alg none": f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{admin}."}  # fmt: skip


def fill(route: str, method: str) -> str:
    """A concrete path for a route: reading routes on a DAG that exists, changing ones on a DAG that does not."""

    def value(m: re.Match) -> str:
        name = m.group(1)
        if name == "dag_id":
            return READ_DAG if method == "GET" else PROBE_DAG
        return {"map_index": "-1", "offset": "0", "stream": "news_clip"}.get(name, "x")

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, route)


@pytest.fixture(scope="module")
def routes(stack) -> list[tuple[str, str]]:
    proc = subprocess.run([sys.executable, "-c", ROUTES], env=stack.env(), cwd=PROJECT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    # the enumeration must see what we know is there, or it proves nothing
    for known in [("POST", "/api/v2/dags/{dag_id}/dagRuns"), ("GET", "/mediaflow/api/stages"), ("GET", "/ui/dags"),
                  ("PATCH", "/execution/task-instances/{task_instance_id}/state")]:  # fmt: skip
        assert known in found, known
    return found


@pytest.fixture(scope="module")
def review_run(stack, api, tmp_path_factory) -> tuple[str, str]:
    """A series_episode title whose legal review must be answered by `admin` (the run's reviewer): a 2 s clip
    uploaded and its run triggered at once. Tests that need the review wait for it; the others run meanwhile."""
    now = datetime.now(UTC)
    asset_id = f"security-review-{now:%Y%m%dt%H%M%S}"
    folder = tmp_path_factory.mktemp("security") / asset_id
    folder.mkdir()
    samples.make_video(folder / "clip.mp4", width=320, height=240, fps=25, seconds=2)
    (folder / "manifest.json").write_text(json.dumps({
        "asset_id": asset_id, "title": "Security test episode", "value_stream": "series_episode",
        "source": {"file": "clip.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
    runner.upload_delivery(stack.s3_client(), Buckets.from_env(), folder)
    run_id = f"security_review__{now:%Y%m%dT%H%M%S}"
    api.wait_for_dags([REVIEW_DAG])
    api.trigger(REVIEW_DAG, run_id, {"delivery": asset_id, "reviewer": "admin"})
    return asset_id, run_id


# ---------------------------------------------------------------- permissions: the read-only user


def test_a_viewer_reads_but_cannot_trigger(stack, api, review_run):
    viewer = as_user(stack, VIEWER)
    assert USERS[VIEWER] == "viewer"
    assert viewer.dag(REVIEW_DAG)["dag_id"] == REVIEW_DAG
    assert viewer.dag_run(REVIEW_DAG, review_run[1]) is not None, "a viewer reads runs"
    assert viewer.request("GET", "/mediaflow/api/streams?days=7")["streams"] is not None, "and the dashboard"
    run_id = f"security_viewer__{time.time_ns()}"
    with pytest.raises(ApiError) as refused:
        viewer.trigger(REVIEW_DAG, run_id, {"delivery": review_run[0]})
    assert refused.value.status == 403
    assert api.dag_run(REVIEW_DAG, run_id) is None, "nothing was started"
    token = login(stack, VIEWER)
    for method, path in (
        ("GET", "/api/v2/connections"),
        ("GET", "/api/v2/variables"),
        ("PATCH", "/api/v2/pools/transcode"),
    ):
        assert call(stack, method, path, token=token, body={"slots": 1} if method == "PATCH" else None)[0] == 403, path


# ---------------------------------------------------------------- authentication: every route, no valid login


def test_every_api_server_route_refuses_a_request_without_a_valid_login(stack, routes):
    real = login(stack, VIEWER)
    bad = forgeries(real)
    admin_ui_token = login(stack, "admin")
    guarded = [(m, r) for m, r in routes if (m, r) not in PUBLIC]
    assert len(guarded) > 150

    def probe(route):
        method, template = route
        path, wrong = fill(template, method), []
        status, _ = call(stack, method, path)
        if status != 401:
            wrong.append(f"no credentials: {status}")
        for name, token in bad.items():
            for how in ({"token": token}, {"headers": {"Cookie": f"_token={token}"}}):
                status, _ = call(stack, method, path, **how)
                if status not in (401, 403):
                    wrong.append(f"{name} {'bearer' if 'token' in how else 'cookie'}: {status}")
        if template.startswith("/execution/"):  # a person's login is not a task's identity
            status, _ = call(stack, method, path, token=admin_ui_token)
            if status not in (401, 403):
                wrong.append(f"a user's token on the execution API: {status}")
        return [f"{method} {template}: {w}" for w in wrong]

    with ThreadPoolExecutor(8) as pool:
        problems = [p for found in pool.map(probe, guarded) for p in found]
    assert problems == []


def test_the_public_routes_are_only_the_known_ones_and_show_no_data(stack, routes):
    public = sorted(set(routes) & set(PUBLIC))
    assert set(PUBLIC) - set(routes) == set(), "a route listed as public no longer exists: take it off the list"
    for method, template in public:
        status, body = call(stack, method, fill(template, method))
        assert status < 500, (method, template, status)
        assert b"value_stream__" not in body, f"{method} {template} shows a DAG without a login"


def test_every_plugin_route_is_enumerated_and_refused_without_a_login(stack, routes):
    """The mediaflow plugin's routes come from dashboard.app.routes (via the routes fixture): each one is in the
    list the previous test probed, and each refuses, here with the exact answers a caller sees."""
    plugin = [(m, r) for m, r in routes if r.startswith("/mediaflow/") and (m, r) not in PUBLIC]
    assert {r for _, r in plugin} >= {"/mediaflow/", "/mediaflow/api/streams", "/mediaflow/runs/{dag_id}/{run_id:path}",
                                      "/mediaflow/streams/{stream}/vsm.svg"}  # fmt: skip
    for method, template in plugin:
        path = fill(template, method)
        assert call(stack, method, path)[0] == 401, path
        assert call(stack, method, path, token="not.a.jwt")[0] == 403, path


# ---------------------------------------------------------------- the UI in a browser, not logged in


def test_the_ui_without_a_login_shows_the_login_page_and_no_dag(page, stack):
    allowed_2xx = ("/static/", "/auth/", "/api/v2/version")
    answered: list[tuple[int, str]] = []
    page.on("response", lambda r: answered.append((r.status, r.url)))
    for start in ("/dags", "/plugin/value-streams", f"/dags/{READ_DAG}", "/required_actions"):
        answered.clear()
        page.goto(start)
        page.wait_for_url(lambda url: urlsplit(url).path == "/auth/login")
        expect(page.get_by_label("Username")).to_be_visible()
        expect(page.get_by_label("Password")).to_be_visible()
        assert "value_stream__" not in page.locator("body").inner_text()
        served = [(s, urlsplit(u).path) for s, u in answered if u.startswith(stack.api_url)]
        data = [(s, p) for s, p in served if 200 <= s < 300 and p != start and not p.startswith(allowed_2xx)]
        assert data == [], f"{start}: answered without a login"
        assert any(s == 401 for s, p in served if p.startswith("/ui/")), "the page asked the API and was refused"


# ---------------------------------------------------------------- permissions: who may answer a review


def _review_ti(api, run_id: str) -> dict:
    return next(t for t in api.task_instances(REVIEW_DAG, run_id) if t["task_id"] == REVIEW_TASK)


def _wait_until_parked(api, run_id: str, timeout_s: float = 600) -> dict:
    """Until the review waits for a person and the worker that parked it has exited and been seen by the scheduler.

    Airflow 3.3.2 loses an answer given before the scheduler has processed that worker's exit: it finds the
    resumed task queued, takes it for killed externally and retries it, and the retry asks again."""
    deadline = time.monotonic() + timeout_s
    while (ti := _review_ti(api, run_id))["state"] != runner.AWAITING:
        run = api.dag_run(REVIEW_DAG, run_id)
        assert run["state"] not in runner.TERMINAL, f"the run ended before its review: {ti['state']}"
        assert time.monotonic() < deadline, f"{REVIEW_TASK} never waited for a person"
        time.sleep(1)
    while ti.get("pid") and Path(f"/proc/{ti['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the scheduler's next loops take the worker's exit in
    return ti


def test_only_the_assigned_reviewer_may_answer_a_review(stack, api, review_run):
    _, run_id = review_run
    parked = _wait_until_parked(api, run_id)
    hitl = f"/api/v2/dags/{REVIEW_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{REVIEW_TASK}/-1/hitlDetails"
    detail = api.request("GET", hitl)
    assert [u["id"] for u in detail["assigned_users"]] == ["admin"]
    # a viewer may not answer any review: refused by role
    with pytest.raises(ApiError) as viewer:
        as_user(stack, VIEWER).answer_review(REVIEW_DAG, run_id, REVIEW_TASK, approve=True, comment="viewer")
    assert viewer.value.status == 403
    # the service account may act on DAGs (role op) but is not this review's reviewer: refused by assignment
    with pytest.raises(ApiError) as other:
        as_user(stack, SERVICE_USER).answer_review(REVIEW_DAG, run_id, REVIEW_TASK, approve=True, comment="batch")
    assert other.value.status == 403 and "not a respondent" in str(other.value)
    assert api.request("GET", hitl)["response_received"] is False, "a refused answer leaves the review open"
    # the assigned reviewer: accepted, and the review goes on with that answer
    answer = api.answer_review(REVIEW_DAG, run_id, REVIEW_TASK, approve=True, comment="security test")
    assert answer["responded_by"]["id"] == "admin" and answer["chosen_options"] == ["Approve"]
    deadline = time.monotonic() + 120
    while (ti := _review_ti(api, run_id))["state"] != "success":
        assert ti["try_number"] == parked["try_number"], "the answer was lost: the review was asked again"
        assert ti["state"] != "failed" and time.monotonic() < deadline, ti["state"]
        time.sleep(1)
    assert api.xcom(REVIEW_DAG, run_id, REVIEW_TASK, key="review") == {"chosen": "Approve", "by": "admin",
                                                                         "comment": "security test"}  # fmt: skip


# ---------------------------------------------------------------- secrets: after the whole session


def _secrets(stack) -> dict[str, str]:
    found = {"S3 secret key": stack.s3_secret, "PostgreSQL password": stack.postgres.password,
             **{f"password of {u}": stack.password(u) for u in USERS}}  # fmt: skip
    assert all(v and len(v) >= 16 for v in found.values()), "every secret is a long random string"
    return found


def _files_holding(roots: list[Path], secrets: dict[str, str], keep: set[Path]) -> list[str]:
    needles = {name: value.encode() for name, value in secrets.items()}
    hits = []
    for root in roots:
        for path in sorted(
            p for p in root.rglob("*") if p.is_file() and p not in keep and not p.name.startswith(".s3_secret.")
        ):
            try:
                data = path.read_bytes()
            except OSError:  # removed meanwhile (a running stack writes and renames)
                continue
            hits += [f"{path}: {name}" for name, needle in needles.items() if needle in data]
    return hits


def _paged(api, path: str, key: str) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = api.request("GET", f"{path}{'&' if '?' in path else '?'}limit=100&offset={offset}")
        rows += page[key]
        offset += 100
        if offset >= page["total_entries"]:
            return rows


@pytest.mark.last
def test_no_secret_in_logs_xcom_or_outputs(stack, api):
    """Runs after every other test of the session, over everything they left: every file of the stack's state
    folder (service logs, Airflow's task logs), of PostgreSQL's data (Airflow's DB, the ledger) and of its out folder (summary, report, mails,
    published files), and through the REST API every XCom value, run conf and rendered template field."""
    secrets = _secrets(stack)
    assert stack.env()["AWS_SECRET_ACCESS_KEY"] == secrets["S3 secret key"], "the secret grepped for is the one in use"
    # where they are kept, on purpose
    holders = {stack.state_dir / "s3_secret", stack.password_file, stack.state_dir / "pg_password"}
    # the scan finds a secret where there is one
    assert _files_holding([stack.state_dir], secrets, set()) != []
    assert list((stack.airflow_home / "logs").rglob("*.log")), "task logs were written and are read"
    assert stack.postgres.sql("CHECKPOINT") == "ok", "the databases' pages are on disk to be read"
    roots = [
        stack.state_dir,
        stack.out_dir,
        *([] if stack.postgres.root.is_relative_to(stack.state_dir) else [stack.postgres.root]),
    ]
    assert list(stack.postgres.data_dir.rglob("*")), "PostgreSQL's data is read"
    assert _files_holding(roots, secrets, holders) == []

    def leaks(blob, where: str) -> list[str]:
        text = json.dumps(blob)
        return [f"{where}: {name}" for name, value in secrets.items() if value in text]

    runs = _paged(api, "/api/v2/dags/~/dagRuns", "dag_runs")
    tis = _paged(api, "/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances")
    entries = _paged(api, "/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries", "xcom_entries")
    assert entries and tis and runs

    def value(e: dict):
        path = (f"/api/v2/dags/{e['dag_id']}/dagRuns/{quote(e['run_id'], safe='')}/taskInstances/"
                f"{quote(e['task_id'], safe='')}/xcomEntries/{quote(e['key'], safe='')}?map_index={e['map_index']}")  # fmt: skip
        return e, api.request("GET", path)

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(value, entries))
    problems = [p for r in runs for p in leaks(r.get("conf"), f"conf of {r['dag_id']} {r['dag_run_id']}")]
    problems += [
        p for t in tis for p in leaks(t.get("rendered_fields"), f"rendered fields of {t['dag_id']} {t['task_id']}")
    ]
    problems += [p for e, v in values for p in leaks(v, f"XCom {e['dag_id']} {e['run_id']} {e['task_id']} {e['key']}")]
    assert problems == []
