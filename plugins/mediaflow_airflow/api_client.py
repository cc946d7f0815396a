"""A small client for Airflow 3's REST API (v2), as the runner and the tests use it: a person's path in. Runs are
started through Airflow's official client (mediaflow_airflow.runs_api); the reads, waits and answers here are the
tooling's own."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from mediaflow import names


class ApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str):
        self.base = base_url.rstrip("/")
        self.username, self.password = username, password
        self._token: str | None = None
        self._login_lock = threading.Lock()  # threads share one token: one login, not one per thread
        self._runs = None  # triggers go through Airflow's official client (trigger_once)

    def _login(self) -> str:
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        req = urllib.request.Request(self.base + "/auth/token", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["access_token"]

    def request(self, method: str, path: str, body: dict | None = None, *, ok_missing: bool = False, tries: int = 5):
        """One call; a 5xx or a time-out (an API server busy under load) is retried with backoff, up to `tries`
        attempts (1: the caller retries with its own policy, as the content batch does). Every failure is an
        ApiError: `status` is the HTTP status, None when no answer came.

        Retrying a POST is safe here: the only POST is a trigger with a fixed run id (409 on a repeat).
        """
        for attempt in range(1, tries + 1):
            try:
                return self._request_once(method, path, body, ok_missing=ok_missing)
            except ApiError as e:
                if e.status is None or e.status < 500 or attempt == tries:
                    raise
            except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
                if attempt == tries:
                    raise ApiError(
                        f"{method} {path}: no answer after {attempt} tr{'ies' if attempt > 1 else 'y'}: {e}"
                    ) from None
            time.sleep(2**attempt)

    def _request_once(self, method: str, path: str, body: dict | None, *, ok_missing: bool):
        for attempt in (1, 2):
            if self._token is None:
                with self._login_lock:
                    if self._token is None:
                        self._token = self._login()
            req = urllib.request.Request(
                self.base + path,
                method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=90) as r:
                    raw = r.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 1:  # token expired: log in again once
                    self._token = None
                    continue
                if e.code == 404 and ok_missing:
                    return None
                raise ApiError(
                    f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:500]}", e.code
                ) from None
        raise ApiError(f"{method} {path}: not authorised")

    # ------------------------------------------------------------ the calls we use
    def dag(self, dag_id: str) -> dict | None:
        return self.request("GET", f"/api/v2/dags/{dag_id}", ok_missing=True)

    def import_errors(self) -> list[dict]:
        return self.request("GET", "/api/v2/importErrors")["import_errors"]

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            missing = [d for d in dag_ids if self.dag(d) is None]
            if not missing:
                return
            errors = self.import_errors()
            if errors:
                detail = "; ".join(f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors)
                raise ApiError(f"DAG import errors: {detail}")
            time.sleep(2)
        raise ApiError(f"DAGs not registered after {timeout:.0f}s: {', '.join(missing)}")

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> dict:
        return self.trigger_once(dag_id, run_id, conf)[0]

    def trigger_once(self, dag_id: str, run_id: str, conf: dict, *, tries: int = 5, note: str | None = None
                     ) -> tuple[dict, bool]:  # fmt: skip
        """(the run, whether this call created it), started through Airflow's official client
        (mediaflow_airflow.runs_api). A run id that exists is never started twice (HTTP 409: read back). A 5xx or
        no answer is tried again with backoff, up to `tries` attempts; every failure is an ApiError."""
        from mediaflow_airflow.runs_api import RunsApi

        with self._login_lock:
            if self._runs is None:
                self._runs = RunsApi(self.base, self.username, self.password)
        for attempt in range(1, tries + 1):
            try:
                return self._runs.trigger_once(dag_id, run_id, conf, note=note)
            except Exception as e:  # noqa: BLE001  the client's ApiException, or ConnectionError: no answer
                status = getattr(e, "status", None)
                if (status is not None and status < 500) or attempt == tries:
                    raise ApiError(f"trigger {dag_id} run {run_id}: {' '.join(str(e).split())[:500]}", status) from None
            time.sleep(2**attempt)
        raise AssertionError("unreachable")

    def asset_event(self, name: str, extra: dict) -> dict:
        """Record an event on the Airflow Asset of this name (what an S3 upload notification would do)."""
        found = self.request("GET", f"/api/v2/assets?name_pattern={urllib.parse.quote(name, safe='')}")["assets"]
        asset = next((a for a in found if a["name"] == name), None)
        if asset is None:
            raise ApiError(f"no Airflow Asset named {name}: is the nightly_content_batch DAG loaded?")
        return self.request("POST", "/api/v2/assets/events", {"asset_id": asset["id"], "extra": extra})

    def wait_asset_triggered_run(self, dag_id: str, since: str, *, timeout: float = 300) -> dict:
        """The first run of `dag_id` an Asset event started at or after `since` (ISO UTC), once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=50&order_by=-run_after")["dag_runs"]
            mine = sorted((r for r in runs if r["run_type"] == "asset_triggered" and r["run_after"] >= since),
                          key=lambda r: r["run_after"])  # fmt: skip
            if mine and mine[0]["state"] in ("success", "failed"):
                return mine[0]
            time.sleep(2)
        raise ApiError(f"no asset-triggered {dag_id} run since {since} ended within {timeout:.0f} s")

    def dag_run(self, dag_id: str, run_id: str) -> dict | None:
        return self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}", ok_missing=True
        )

    def _pages(self, path: str, key: str, params: dict, *, limit: int = 100) -> list[dict]:
        """Every item of a list endpoint, page by page (keyset cursor: no row skipped or repeated when rows change
        between pages; `limit` is the API server's maximum page size by default)."""
        items: list[dict] = []
        cursor = ""
        while True:
            query = urllib.parse.urlencode({**params, "limit": limit, "cursor": cursor}, doseq=True)
            page = self.request("GET", f"{path}?{query}")
            items += page[key]
            cursor = page.get("next_cursor")
            if not cursor or not page[key]:
                return items

    def dag_runs_since(self, since: str | None = None, *, states: list[str] | None = None) -> list[dict]:
        """Runs of every DAG updated at or after `since` (ISO UTC), optionally only in `states`: one paginated list,
        whatever the number of DAGs."""
        params = {
            "order_by": "id",
            **({"updated_at_gte": since} if since else {}),
            **({"state": states} if states else {}),
        }
        return self._pages("/api/v2/dags/~/dagRuns", "dag_runs", params)

    def task_instances_since(self, since: str | None = None, *, states: list[str] | None = None) -> list[dict]:
        """Task instances of every run updated at or after `since` (ISO UTC), optionally only in `states`."""
        params = {**({"updated_at_gte": since} if since else {}), **({"state": states} if states else {})}
        return self._pages("/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances", params)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=1000"
        return self.request("GET", path)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = names.RETURN_VALUE, map_index: int = -1):
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}"
                f"/xcomEntries/{key}?map_index={map_index}&deserialize=true")  # fmt: skip
        entry = self.request("GET", path, ok_missing=True)
        return entry["value"] if entry else None

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str], *, downstream: bool = True) -> list[dict]:
        """What an operator does in the UI to resume a failed title: clear the task (and what follows it), so the
        scheduler runs it again in the same run."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "only_failed": False,
                "include_downstream": downstream, "reset_dag_runs": True}  # fmt: skip
        return self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", body)["task_instances"]

    def answer_review(self, dag_id: str, run_id: str, task_id: str, *, approve: bool, comment: str = "") -> dict:
        """What a reviewer does in the UI: answer a HITL approval task (Approve / Reject, with a comment)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}/-1/hitlDetails"
        body = {"chosen_options": ["Approve" if approve else "Reject"], "params_input": {"comment": comment}}
        return self.request("PATCH", path, body)
