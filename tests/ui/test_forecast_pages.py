"""Forecasts on the dashboard, used as a person uses them: real Debian chromium driven by Playwright against a real
stack. Six real news_clip titles published (the history a forecast needs), a seventh without a rights row waits
for its legal review: it is the batch still open. Its run page shows an ETA (and the JSON API the same); the Value
Streams page shows the batch burn-down with its band, p50 line and the actual so far, and the what-if form, where
more media slots give a shorter lead time and a bad value is named beside its field. Screenshots: out/ui/*.png.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from mediaflow import forecast
from mediaflow.spec import load_specs
from mediaflow.store import Buckets
from mediaflow_airflow.runs_api import bearer_token
from mediaflow_dev import runner

pytestmark = pytest.mark.integration

STREAM = "news_clip"
DAG_ID = f"value_stream__{STREAM}"
PUBLISHED = forecast.MIN_RUNS + 1
SLOW_MS = 180_000  # a page computes its forecast (and the window's metrics) on a machine shared with other work


@pytest.fixture(scope="module")
def batch(stack, api, tmp_path_factory, clip_delivery) -> dict:
    """PUBLISHED 2 s clips with their rights rows, and one without (legal review by a person). {asset: run id}"""
    now = datetime.now(UTC)
    root = tmp_path_factory.mktemp("forecast")
    assets = [f"ui-forecast-{now:%H%M%S}-{i}" for i in range(PUBLISHED + 1)]
    waiting = assets[-1]
    rows = [f"{a},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false" for a in assets if a != waiting]
    (root / "avails.csv").write_text(
        "asset_id,territory,channel,window_start,window_end,exclusive\n" + "\n".join(rows) + "\n"
    )
    s3, buckets = stack.s3_client(), Buckets.from_env()
    runner.merge_avails(s3, buckets, root / "avails.csv")
    api.wait_for_dags([DAG_ID])
    runs, spec = {}, load_specs()[STREAM]
    for asset in assets:
        runner.upload_delivery(s3, buckets, clip_delivery(root, asset, "Forecast test clip"))
        runs[asset] = f"ui_forecast__{asset}"
        api.trigger(DAG_ID, runs[asset], {"delivery": asset})
    done = runner.wait(stack, [(a, DAG_ID, r, spec) for a, r in runs.items()], timeout_s=1500)
    states = {a: done[r][0]["state"] for a, r in runs.items()}
    assert [a for a in assets[:-1] if states[a] != "success"] == [], states
    assert states[waiting] == "running", "the title without rights waits for its legal review"
    return {"runs": runs, "waiting": waiting}


def token(stack) -> str:
    return bearer_token(stack.api_url, "admin", stack.password())


def get(stack, path: str, bearer: bool = True) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token(stack)}"} if bearer else {}
    req = urllib.request.Request(stack.api_url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_forecasts_need_a_login_and_a_bad_what_if_field_is_named(stack, batch):
    for path in ("/mediaflow/api/forecast", "/mediaflow/api/whatif?slots.media=3"):
        assert get(stack, path, bearer=False)[0] == 401, path
    status, body = get(stack, "/mediaflow/api/whatif?slots.media=lots&titles=0")
    assert status == 422
    assert {e["field"]: e["message"] for e in body["errors"]} == {
        "slots.media": "'lots' is not a whole number",
        "titles": "0 is out of range: it must be between 1 and 1000",
    }


def test_the_run_page_of_a_waiting_title_shows_its_eta(page, stack, shots, batch, log_in):
    run_id = batch["runs"][batch["waiting"]]
    status, one = get(stack, f"/mediaflow/api/runs/{DAG_ID}/{quote(run_id, safe='')}")
    assert status == 200 and one["eta"]["p50_at"] and one["eta"]["p85_at"], one.get("eta")
    assert one["eta"]["remaining"][0] == "review" and f"finished runs of {STREAM}" in one["eta"]["basis"]
    status, fc = get(stack, "/mediaflow/api/forecast")
    # every open title of the stack is in it (in the whole suite, other tests' titles wait for people too)
    ours = [e for e in fc["etas"] if e["run_id"] == run_id] if status == 200 else []
    assert len(ours) == 1, fc
    assert ours[0]["eta"]["in_batch"]["p85_at"] and fc["batch"]["p85_at"]

    page.set_default_timeout(SLOW_MS)
    log_in(page, stack.password())
    page.goto(f"/mediaflow/runs/{DAG_ID}/{quote(run_id, safe='')}")
    eta = page.locator("p.eta")
    expect(eta).to_contain_text("ETA p50", timeout=SLOW_MS)
    expect(eta).to_contain_text("still to run: review, publish")
    expect(eta.locator(".eta-batch")).to_contain_text("In the batch now")
    assert eta.get_attribute("data-p50-at") <= eta.get_attribute("data-p85-at")
    shots(page, "forecast-1-run-page-eta")


def test_value_streams_shows_the_burndown_and_the_what_if_answers(page, stack, shots, batch, log_in):
    page.set_default_timeout(SLOW_MS)
    log_in(page, stack.password())
    page.get_by_role("link", name="Value Streams").click()
    page.wait_for_url(re.compile(r"/plugin/value-streams"))
    frame = page.frame_locator("iframe[title='Value Streams']")
    card = frame.locator("#forecast")
    line = card.locator(".forecast-line")
    # this module's waiting title, and in the whole suite the other tests' titles still open
    expect(line).to_contain_text(re.compile(r"Batch forecast: \d+ titles? still to finish; the last one"),
                                 timeout=SLOW_MS)  # fmt: skip
    chart = card.locator("figure.burndown svg")
    expect(chart).to_be_visible()
    for part in ("forecast-band", "forecast-p50", "actual"):
        expect(chart.locator(f"g[id$='-{part}']")).to_have_count(1)
    expect(chart.get_by_text("forecast p15–p85")).to_be_visible()
    shots(page, "forecast-2-burndown")

    form = frame.locator("#whatif form")
    slots = form.locator("input[name='slots.media']")
    base_slots = int(slots.input_value())
    slots.fill("lots")
    form.get_by_role("button", name="Simulate").click()
    error = frame.locator("#whatif .field-error[data-field='slots.media']")
    expect(error).to_have_text("'lots' is not a whole number", timeout=SLOW_MS)
    expect(frame.locator("#whatif input[name='slots.media']")).to_have_attribute("aria-invalid", "true")

    frame.locator("#whatif input[name='slots.media']").fill(str(base_slots + 6))
    frame.locator("#whatif").get_by_role("button", name="Simulate").click()
    result = frame.locator("table.whatif-result")
    expect(result).to_be_visible(timeout=SLOW_MS)
    expect(frame.locator("#whatif input[name='slots.media']")).to_have_value(str(base_slots + 6))
    cells = result.locator("tr[data-metric='lead_time_p50_s'] td[data-scenario]")
    base, changed = (float(cells.nth(i).get_attribute("data-value")) for i in (0, 1))
    assert changed < base, (base, changed)  # more slots on the bottleneck: a shorter lead time
    expect(result.locator("tr[data-metric='bottleneck'] td[data-scenario='base']")).not_to_have_text("–")
    shots(page, "forecast-3-what-if")
