"""Starting and annotating DAG runs through Airflow's official Python client (apache-airflow-client, REST API v2):
what the content batch, the runner and the tests use to start runs. No Airflow import: the dev tooling uses it too.

Errors: an HTTP error answer is a `CallError` (`.status` the HTTP status; the message says the call, the status and
the body, as a delivery's pending reason shows it); no answer at all (refused, cut, timed out) is a `ConnectionError`
(`.status` None), so `mediaflow.batch.trigger_retryable` sorts both."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

# (connect, read) seconds: on 2 busy cores a trigger's transaction can wait on the metadata DB for a while
TIMEOUT_S = (10.0, 90.0)


def bearer_token(base_url: str, username: str, password: str, *, timeout: float = 30.0) -> str:
    """A JWT from the auth manager's token endpoint (POST /auth/token), which the REST client does not cover. No
    answer: ConnectionError; an HTTP error: requests' HTTPError with `.status` set."""
    import requests

    try:
        r = requests.post(f"{base_url.rstrip('/')}/auth/token", json={"username": username, "password": password},
                          timeout=timeout)  # fmt: skip
    except requests.RequestException as e:
        raise _no_answer("POST", "/auth/token", e) from None
    if r.status_code >= 400:
        err = requests.HTTPError(f"POST /auth/token: HTTP {r.status_code}: {r.text[:300]}", response=r)
        err.status = r.status_code  # type: ignore[attr-defined]
        raise err
    return r.json()["access_token"]


class CallError(RuntimeError):
    """An HTTP error answer from the REST API."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _no_answer(method: str, path: str, exc: BaseException) -> ConnectionError:
    err = ConnectionError(f"{method} {path}: no answer: {' '.join(str(exc).split())[:300]}")
    err.status = None  # type: ignore[attr-defined]
    return err


@contextmanager
def _answered(method: str, path: str) -> Iterator[None]:
    """The client's ApiException becomes a CallError (readable: the client's own text spans lines and headers);
    urllib3's errors (no HTTP answer) and a status-0 ApiException become ConnectionError."""
    import urllib3
    from airflow_client.client.exceptions import ApiException

    try:
        yield
    except urllib3.exceptions.HTTPError as e:
        raise _no_answer(method, path, e) from None
    except ApiException as e:
        if not e.status:
            raise _no_answer(method, path, e) from None
        body = " ".join(str(e.body or e.reason or "").split())[:300]
        raise CallError(f"{method} {path}: HTTP {e.status}: {body}", e.status) from None


def trigger_once(client, dag_id: str, run_id: str, conf: dict, *, note: str | None = None) -> tuple[dict, bool]:
    """Start `dag_id`'s run `run_id` (no logical date) with `conf` and an optional markdown `note` (shown on the run's
    page). One attempt. (the run, whether this call created it): a run id that exists is never started twice (HTTP
    409); the run is read back instead, its note untouched."""
    import airflow_client.client as ac

    runs = ac.DagRunApi(client)
    body = ac.TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=conf, note=note)
    try:
        with _answered("POST", f"/api/v2/dags/{dag_id}/dagRuns"):
            return runs.trigger_dag_run(dag_id, body, _request_timeout=TIMEOUT_S).to_dict(), True
    except CallError as e:
        if e.status != 409:  # there already, or a retried POST whose first try went through
            raise
    with _answered("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"):
        return runs.get_dag_run(dag_id, run_id, _request_timeout=TIMEOUT_S).to_dict(), False


def set_note(client, dag_id: str, run_id: str, note: str) -> dict:
    """Replace a run's note (markdown, at most 1000 characters: Airflow's limit)."""
    import airflow_client.client as ac

    with _answered("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"):
        return (
            ac.DagRunApi(client)
            .patch_dag_run(
                dag_id, run_id, ac.DAGRunPatchBody(note=note), update_mask=["note"], _request_timeout=TIMEOUT_S
            )
            .to_dict()
        )


class RunsApi:
    """Airflow's REST API as one account, shared by threads: one token (fetched at the first call, fetched again once
    when it expired), one connection pool. What the content batch triggers with."""

    def __init__(self, base_url: str, username: str, password: str, *, threads: int = 8):
        import threading

        self.base_url, self.username, self.password, self.threads = base_url.rstrip("/"), username, password, threads
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        with self._lock:
            if self._client is None:
                import airflow_client.client as ac

                token = bearer_token(self.base_url, self.username, self.password)
                config = ac.Configuration(host=self.base_url, access_token=token, retries=0)
                config.connection_pool_maxsize = max(self.threads, config.connection_pool_maxsize or 0)
                self._client = ac.ApiClient(config)
            return self._client

    def _call(self, fn, *args, **kwargs):
        for attempt in (1, 2):
            try:
                return fn(self.client(), *args, **kwargs)
            except CallError as e:
                if e.status != 401 or attempt == 2:
                    raise
                with self._lock:  # the token expired: fetch another once
                    self._client = None
        raise AssertionError("unreachable")

    def trigger_once(self, dag_id: str, run_id: str, conf: dict, *, note: str | None = None) -> tuple[dict, bool]:
        return self._call(trigger_once, dag_id, run_id, conf, note=note)

    def set_note(self, dag_id: str, run_id: str, note: str) -> dict:
        return self._call(set_note, dag_id, run_id, note)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.rest_client.pool_manager.clear()
                self._client = None
