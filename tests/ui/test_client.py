"""Airflow's official Python client (apache-airflow-client, REST API v2) against the real stack: trigger a
value stream with a conf, read the run back, and see a bad conf refused with the form's message.

The client takes a bearer token; SimpleAuthManager issues one at POST /auth/token (as mediaflow_airflow.api_client does).
The delivery does not exist here, so the run will end `rejected`; the test does not wait for that.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.integration

DAG_ID = "value_stream__news_clip"


def token(base_url: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    req = urllib.request.Request(f"{base_url}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


@pytest.fixture(scope="module")
def client(stack, api):
    import airflow_client.client as ac  # noqa: PLC0415

    api.wait_for_dags([DAG_ID])
    config = ac.Configuration(host=stack.api_url, access_token=token(stack.api_url, stack.password()))
    with ac.ApiClient(config) as api_client:
        yield ac, api_client


def test_trigger_and_read_back_with_the_official_client(client):
    ac, api_client = client
    runs = ac.DagRunApi(api_client)
    run_id = f"client__{uuid.uuid4().hex[:12]}"
    conf = {"delivery": "client-delivery", "priority": "high"}

    created = runs.trigger_dag_run(DAG_ID, ac.TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=conf))
    assert created.dag_run_id == run_id and created.logical_date is None

    run = runs.get_dag_run(DAG_ID, run_id)
    assert run.dag_id == DAG_ID and run.run_type == "manual"
    assert run.triggered_by == "rest_api"
    assert run.conf == conf  # the run keeps the conf as sent; the DAG's params fill the rest at run time
    assert run.state in ("queued", "running", "success", "failed")


def test_a_bad_conf_is_refused_naming_the_param(client):
    ac, api_client = client
    runs = ac.DagRunApi(api_client)
    with pytest.raises(ac.ApiException) as err:
        runs.trigger_dag_run(DAG_ID, ac.TriggerDAGRunPostBody(logical_date=None,
                                                              conf={"delivery": "client-delivery", "priority": "asap"}))  # fmt: skip
    assert err.value.status == 400
    assert (
        "Invalid input for param priority: 'asap' is not one of ['low', 'normal', 'high', 'urgent']" in err.value.body
    )
