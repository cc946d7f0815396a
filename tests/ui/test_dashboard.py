"""The "Value Streams" dashboard inside the Airflow UI, used as a person uses it: real Debian chromium driven by
Playwright against a real stack that has processed one real title. Log in, open Value Streams from the nav, read
the stage medians inside the plugin's iframe and check them against the JSON endpoint, click the title through to
its Airflow run, open the run's Value stream tab. Also: no login, no data. Screenshots: out/ui/*.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import pytest
from playwright.sync_api import expect

from mediaflow import feedback
from mediaflow.spec import load_specs
from mediaflow.store import Buckets
from mediaflow_airflow.runs_api import bearer_token
from mediaflow_dev import runner

pytestmark = pytest.mark.integration

STREAM = "news_clip"
DAG_ID = f"value_stream__{STREAM}"
MEDIANS = ("cycle_median_s", "wait_median_s", "active_median_s")


@pytest.fixture(scope="module")
def title(stack, api, tmp_path_factory, landed_clip) -> tuple[str, str]:
    """One real title through news_clip, ended: a 2 s clip and its rights row uploaded to the landing bucket, the
    run triggered through the REST API with a run id that needs quoting in a URL (':' and '+'). (asset id, run id)"""
    now = datetime.now(UTC)
    asset_id = f"ui-dashboard-{now:%Y%m%dt%H%M%S}"
    root = tmp_path_factory.mktemp("dashboard")
    landed_clip(stack, root, asset_id, "Dashboard test clip")

    run_id = f"ui_dashboard__{now.isoformat(timespec='seconds')}"
    api.wait_for_dags([DAG_ID])
    api.trigger(DAG_ID, run_id, {"delivery": asset_id})
    done = runner.wait(stack, [(asset_id, DAG_ID, run_id, load_specs()[STREAM])], timeout_s=600)
    assert done[run_id][0]["state"] == "success", done[run_id]
    # the dashboard recomputes at most every 15 s (dashboard.TTL_S): a person refreshes until the title shows
    deadline = time.monotonic() + 60
    while run_id not in {
        r["run_id"] for r in get_json(stack, f"/mediaflow/api/runs?stream={STREAM}&limit=500")["runs"]
    }:
        assert time.monotonic() < deadline, "the title never reached the dashboard"
        time.sleep(2)
    return asset_id, run_id


def token(stack) -> str:
    return bearer_token(stack.api_url, "admin", stack.password())


def get(stack, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(stack.api_url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(stack, path: str) -> dict:
    status, body = get(stack, path, {"Authorization": f"Bearer {token(stack)}"})
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def test_every_route_needs_a_login(stack):
    # routes that exist (news_clip is a DAG on every stack), so that only the credentials decide
    bearer = {"Authorization": f"Bearer {token(stack)}"}
    for path in ("/mediaflow/", "/mediaflow/api/stages", "/mediaflow/api/streams?days=7", f"/mediaflow/api/vsm/{STREAM}",
                 f"/mediaflow/streams/{STREAM}/vsm.svg"):  # fmt: skip
        assert get(stack, path)[0] == 401, path
        assert get(stack, path, {"Authorization": "Bearer not.a.jwt"})[0] in (401, 403), path
        assert get(stack, path, {"Cookie": "_token=not.a.jwt"})[0] in (401, 403), path
        assert get(stack, path, bearer)[0] == 200, path
    status, page = get(stack, "/mediaflow/")
    assert b"Log in to" in page, "a person who opens the page on its own is told to log in"


def test_value_streams_in_the_airflow_ui(page, stack, shots, title, log_in):
    asset_id, run_id = title
    log_in(page, stack.password())
    page.get_by_role("link", name="Value Streams").click()
    page.wait_for_url(re.compile(r"/plugin/value-streams"))
    frame = page.frame_locator("iframe[title='Value Streams']")
    card = frame.locator(f"section.stream[data-stream='{STREAM}']")
    expect(card.locator("table.stages")).to_be_visible()
    expect(card.get_by_text("Bottleneck:")).to_be_visible()
    expect(card.locator("figure.vsm img")).to_be_visible()
    assert card.locator("figure.vsm img").evaluate("img => img.complete && img.naturalWidth > 0"), "VSM image drawn"

    # --- the stage medians on the page are the JSON endpoint's numbers (one cached computation: when the window
    # moved on between the two reads, read both again)
    for _ in range(3):
        until = frame.locator("header[data-until]").get_attribute("data-until")
        shown = card.locator("td[data-metric]").evaluate_all(
            "tds => tds.map(td => [td.dataset.stage, td.dataset.metric, td.dataset.value])")  # fmt: skip
        api_stages = get_json(stack, f"/mediaflow/api/stages?stream={STREAM}")
        if api_stages["window"]["until"] == until:
            break
        page.reload()
    else:
        pytest.fail("the page and the JSON endpoint never showed the same computation")
    on_page = {(stage, metric): float(value) for stage, metric, value in shown if metric in MEDIANS}
    expected = {(r["stage"], m): r[m] for r in api_stages["stages"] for m in MEDIANS}
    assert {"ingest", "transcode", "compliance", "review", "publish"} <= {stage for stage, _ in expected}
    assert on_page == expected
    shots(page, "dashboard-1-value-streams")

    # --- a title opens its run in Airflow (the whole UI, not the iframe)
    link = frame.locator(f"tr[data-run-id='{run_id}'] a.title")
    expect(link).to_have_text(asset_id)
    link.click()
    page.wait_for_url(lambda url: unquote(url).endswith(f"/dags/{DAG_ID}/runs/{run_id}"))
    expect(page.get_by_text(run_id).first).to_be_visible()
    expect(page.get_by_role("cell", name="ingest.ingest_delivery")).to_be_visible()  # Airflow's task instances
    shots(page, "dashboard-2-airflow-run-page")

    # --- the run's Value stream tab: its stages on a timeline, each against its SLA
    page.get_by_role("link", name="Value stream", exact=True).click()
    view = page.frame_locator("iframe[title='Value stream']")
    expect(view.locator(".tl")).to_be_visible()
    expect(view.get_by_role("heading", name=asset_id)).to_be_visible()
    one = get_json(stack, f"/mediaflow/api/runs/{DAG_ID}/{quote(run_id, safe='')}")
    assert [s["stage"] for s in one["stages"]] == ["ingest", "transcode", "compliance", "review", "publish"]
    for stage in one["stages"]:
        name = stage["stage"]
        expect(view.locator(f".tl-track[data-stage='{name}'] .tl-att").first).to_be_visible()
        expect(view.locator(f".tl-sla[data-stage='{name}'] .badge")).to_have_text(
            "SLA missed" if stage["sla_missed"] else "met"
        )
        cell = view.locator(f"table.run-stages tr[data-stage='{name}'] td[data-metric='cycle_s']")
        assert float(cell.get_attribute("data-value")) == stage["cycle_s"]
    href = view.locator("a.airflow-run").get_attribute("href")
    assert unquote(href) == f"/dags/{DAG_ID}/runs/{run_id}"
    shots(page, "dashboard-3-run-value-stream-tab")


def test_what_a_url_carries_is_shown_as_text(page, stack, shots, log_in):
    """Values from the address (a stream, a run id) come back on the error page escaped, never as markup."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, stack.password())
    hostile = "<img src=x onerror=alert(document.domain)>"
    for path in (f"/mediaflow/?stream={quote(hostile)}", f"/mediaflow/runs/{DAG_ID}/{quote(hostile, safe='')}"):
        response = page.goto(path)
        assert response.status == 404
        expect(page.get_by_text(hostile)).to_be_visible()
        assert page.locator("img").count() == 0
    shots(page, "dashboard-4-hostile-value-escaped")
    assert dialogs == []


def test_audience_feedback_page_shows_retention_recommendations_and_the_chosen_poster(
    page, stack, api, shots, title, log_in, luminance
):
    """Viewers watch the dashboard's title, half of them in pt-BR (which it lacks), and click poster p2 far more
    than p1; others watch a 2-hour film. After audience_feedback and default_posters ran, a person opens Value
    Streams > Audience feedback and sees each title's retention curve on a time axis (the 2-s clip's as much a curve
    as the film's), the pt-BR recommendation and p2 as the clip's default poster."""
    asset_id, _ = title
    film = f"{asset_id}-film"  # never published: its span is the furthest position its viewers reached (2:00:00)
    s3, buckets = stack.s3_client(), Buckets.from_env()
    events = feedback.synthetic_events([{"asset_id": asset_id, "duration_s": 2.0, "territories": ["US"],
                                         "locales": ["en-US", "pt-BR"], "intro_drop": 0.1, "drop_per_min": 6.0,
                                         "posters": {"p1": 0.3, "p2": 0.75}},
                                        {"asset_id": film, "duration_s": 7200.0, "territories": ["US"],
                                         "locales": ["en-US"], "intro_drop": 0.1, "drop_per_min": 0.01}],
                                       seed=21, sessions_per_title=600)  # fmt: skip
    drop = f"viewing-events/ui-{asset_id}.csv"
    s3.put_object(Bucket=buckets.landing, Key=drop, Body=events.to_csv(index=False).encode())
    since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    api.asset_event("mediaflow_viewing_events", {"key": drop})
    fed = api.wait_asset_triggered_run("audience_feedback", since, timeout=300)
    assert fed["state"] == "success"
    # the default_posters run this feedback started (an earlier one may have started after `since`)
    assert api.wait_asset_triggered_run("default_posters", fed["run_after"], timeout=300)["state"] == "success"

    log_in(page, stack.password())
    page.get_by_role("link", name="Value Streams").click()
    frame = page.frame_locator("iframe[title='Value Streams']")
    frame.get_by_role("link", name=re.compile("Audience feedback")).click()
    expect(frame.get_by_role("heading", name="Audience feedback")).to_be_visible()
    for name, end in ((asset_id, "0:02"), (film, "2:00:00")):
        chart = frame.locator("div.chart").filter(has=frame.locator(f"b:text-is('{name}')"))
        expect(chart.locator("svg.retention")).to_be_visible()
        points = set(chart.locator("svg.retention polyline").get_attribute("points").split())
        assert len(points) >= 20, f"{name}: a curve, not a handful of points ({len(points)})"
        ticks = chart.locator("svg.retention text.tick").all_text_contents()
        assert len(ticks) >= 3 and all(re.fullmatch(r"\d+:\d\d(:\d\d)?", t) for t in ticks), ticks
        assert ticks[0] in ("0:00", "0:00:00") and ticks[-1] == end, ticks  # the time axis runs 0 to its end
    for chart in frame.locator("div.chart svg.retention").all():  # every title on the page, not only these two
        assert len(set(chart.locator("polyline").get_attribute("points").split())) >= 20
    rec = frame.locator("tr").filter(has_text=asset_id).filter(has_text="pt-BR").filter(has_text="add")
    expect(rec.first).to_be_visible()
    chosen = frame.locator(f"#default-posters tr[data-asset='{asset_id}'] td")
    expect(chosen.nth(1)).to_have_text("p2")
    expect(chosen.nth(4)).to_have_text("web")
    shots(page, "dashboard-5-audience-feedback")
    # Airflow's colour mode set to dark (its stored "theme", as its toggle stores it): the report turns dark too
    page.evaluate("localStorage.setItem('theme', 'dark')")
    expect(frame.locator("html[data-theme='dark']")).to_have_count(1)
    body, text, _ = luminance(frame.locator("h1"))
    assert body < 0.05 and text > 0.6, (body, text)
    shots(page, "dashboard-6-audience-feedback-dark")
    page.evaluate("localStorage.setItem('theme', 'light')")
    expect(frame.locator("html[data-theme='light']")).to_have_count(1)
    poster = s3.get_object(Bucket=buckets.distribution, Key=f"web/{asset_id}/poster.jpg")["Body"].read()
    state = json.loads(s3.get_object(Bucket=buckets.reports, Key=f"published/{asset_id}.json")["Body"].read())
    p2 = f"web/{asset_id}/{state['version']}/posters/p2.jpg"  # the candidate in the published version's folder
    assert poster == s3.get_object(Bucket=buckets.distribution, Key=p2)["Body"].read()
