"""The dashboard at home in Airflow's UI, used as a person uses it (Debian's chromium driven by Playwright): on a stack
of its own served under a base URL with a path (AIRFLOW__API__BASE_URL=http://host:port/airflow, as behind a proxy
that maps /airflow to Airflow), with one real title through news_clip. Log in, open Value Streams from Airflow's
nav, go through the dashboard's pages and links (window, stream, what-if, a title's stages, the JSON, the title's
Airflow run and its Value stream tab): every request answered, nothing outside /airflow. Then Airflow's own
light/dark toggle: the dashboard turns dark with it, text still readable, and light again. The same stack serves
both tests (one stack boot for the module). Screenshots: out/ui/home-*.png.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import pytest
from playwright.sync_api import expect

from mediaflow.spec import load_specs
from mediaflow_airflow.api_client import AirflowApi
from mediaflow_dev import runner
from mediaflow_dev.devstack import Stack

pytestmark = pytest.mark.integration

BASE = "/airflow"
STREAM = "news_clip"
DAG_ID = f"value_stream__{STREAM}"


@pytest.fixture(scope="module")
def sub_stack(tmp_path_factory, free_port):
    """A stack of its own under BASE (the session's stack stays at the host's root)."""
    root = tmp_path_factory.mktemp("home-stack")
    st = Stack(state_dir=root / "state", out_dir=root / "out", airflow_port=free_port(), s3_port=free_port(),
               smtp_port=free_port(), pg_port=free_port(), base_path=BASE)  # fmt: skip
    try:
        st.up()
        yield st
    finally:
        st.down()
        st.postgres.remove()


@pytest.fixture(scope="module")
def title(sub_stack, tmp_path_factory, landed_clip) -> tuple[str, str]:
    """One real 2-s title through news_clip on that stack, ended. (asset id, run id)"""
    now = datetime.now(UTC)
    asset_id = f"ui-home-{now:%Y%m%dt%H%M%S}"
    root = tmp_path_factory.mktemp("home")
    landed_clip(sub_stack, root, asset_id, "Home test clip")
    api = AirflowApi(sub_stack.api_url, "admin", sub_stack.password())
    api.wait_for_dags([DAG_ID])
    run_id = f"ui_home__{now.isoformat(timespec='seconds')}"
    api.trigger(DAG_ID, run_id, {"delivery": asset_id})
    done = runner.wait(sub_stack, [(asset_id, DAG_ID, run_id, load_specs()[STREAM])], timeout_s=600)
    assert done[run_id][0]["state"] == "success", done[run_id]
    return asset_id, run_id


@pytest.fixture
def ui(browser, sub_stack):
    """A fresh browser context on that stack, logged in through the login form under BASE. Relative addresses
    ("dags") resolve under BASE. `ui.failed` collects every answer of 400 or more and every request that got no
    answer after the login, and every request outside BASE."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=sub_stack.api_url + "/")
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("auth/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(sub_stack.password())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.failed = []
    origin = f"http://{urlsplit(sub_stack.api_url).netloc}"

    def answered(response):
        path = urlsplit(response.url).path
        if response.url.startswith(origin) and (response.status >= 400 or not path.startswith(BASE + "/")):
            page.failed.append((response.status, response.url))

    page.on("response", answered)
    # (a fetch the page's own navigation cut short is no failure)
    page.on("requestfailed", lambda r: "ERR_ABORTED" in (r.failure or "") or page.failed.append((r.failure, r.url)))
    try:
        yield page
    finally:
        context.close()


def frame_path(page, title: str) -> str:
    """The path of the page in the frame titled `title`, once it has loaded."""
    frame = page.locator(f"iframe[title='{title}']").element_handle().content_frame()
    frame.wait_for_load_state()
    return unquote(urlsplit(frame.url).path)


def test_the_dashboard_under_a_base_path(ui, sub_stack, shots, title):
    asset_id, run_id = title
    page = ui
    page.get_by_role("link", name="Value Streams").click()
    page.wait_for_url(re.compile(f"{BASE}/plugin/value-streams"))
    frame = page.frame_locator("iframe[title='Value Streams']")
    card = frame.locator(f"section.stream[data-stream='{STREAM}']")
    # the dashboard caches a window for up to 15 s (dashboard.TTL_S): a person reloads until the title shows
    for _ in range(12):
        if frame.locator(f"tr[data-run-id='{run_id}']").count():
            break
        page.wait_for_timeout(2000)
        page.reload()
    expect(frame.locator(f"tr[data-run-id='{run_id}'] a.title")).to_have_text(asset_id)
    assert frame_path(page, "Value Streams") == f"{BASE}/mediaflow/"
    expect(card.locator("table.stages")).to_be_visible()
    expect(card.locator("figure.vsm img")).to_be_visible()
    assert card.locator("figure.vsm img").evaluate("img => img.complete && img.naturalWidth > 0"), "VSM image drawn"
    shots(page, "home-1-value-streams-under-a-base-path")

    # --- the page's own links: window, stream, the what-if form (a plain GET), and back to all streams
    frame.get_by_role("link", name="7 d", exact=True).click()
    expect(frame.locator("header[data-days='7']")).to_be_visible()
    frame.get_by_role("navigation", name="Value stream").get_by_role("link", name=STREAM, exact=True).click()
    expect(frame.locator("nav[aria-label='Value stream'] a[aria-current]")).to_have_text(STREAM)
    assert frame_path(page, "Value Streams") == f"{BASE}/mediaflow/"
    frame.get_by_role("button", name="Simulate").click()
    expect(frame.locator("table.whatif-result, .whatif-errors, #whatif .empty").first).to_be_visible()
    frame.get_by_role("link", name="all streams").click()
    expect(frame.locator("nav[aria-label='Value stream'] a[aria-current]")).to_have_text("all streams")

    # --- the JSON the footer links to, with the UI's login
    for href in frame.locator("footer a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert href.startswith(f"{BASE}/mediaflow/api/"), href
        response = page.request.get(href)
        assert response.status == 200, (href, response.status)

    # --- a title's stages, and back
    # this run's row: the stack's scheduled batch may have taken the same delivery into a run of its own
    frame.locator(f"tr[data-run-id='{run_id}'] a.stages-link").click()
    expect(frame.get_by_role("heading", name=asset_id)).to_be_visible()
    expect(frame.locator(".tl-track[data-stage='publish'] .tl-att").first).to_be_visible()
    assert frame_path(page, "Value Streams") == f"{BASE}/mediaflow/runs/{DAG_ID}/{run_id}"
    assert unquote(frame.locator("a.airflow-run").get_attribute("href")) == f"{BASE}/dags/{DAG_ID}/runs/{run_id}"
    frame.get_by_role("link", name="◂ Value streams").click()
    expect(card.locator("table.stages")).to_be_visible()

    # --- a title opens its run in Airflow: the whole window, under the base path
    frame.locator(f"tr[data-run-id='{run_id}'] a.title").click()
    page.wait_for_url(lambda url: unquote(urlsplit(url).path) == f"{BASE}/dags/{DAG_ID}/runs/{run_id}")
    expect(page.get_by_role("cell", name="ingest.ingest_delivery")).to_be_visible(timeout=30_000)  # its tasks

    # --- the run's Value stream tab
    page.get_by_role("link", name="Value stream", exact=True).click()
    view = page.frame_locator("iframe[title='Value stream']")
    expect(view.get_by_role("heading", name=asset_id)).to_be_visible()
    expect(view.locator(".tl-track[data-stage='ingest'] .tl-att").first).to_be_visible()
    assert frame_path(page, "Value stream") == f"{BASE}/mediaflow/runs/{DAG_ID}/{run_id}"
    shots(page, "home-2-run-value-stream-tab-under-a-base-path")
    view.locator("a.airflow-run").click()  # back to the run's own page, as the tab's link says
    page.wait_for_url(lambda url: unquote(urlsplit(url).path) == f"{BASE}/dags/{DAG_ID}/runs/{run_id}")
    expect(page.get_by_role("cell", name="ingest.ingest_delivery")).to_be_visible(timeout=30_000)

    assert page.failed == [], "every request answered, all under the base path"


def contrast(a: float, b: float) -> float:
    """WCAG contrast ratio of two relative luminances."""
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def test_the_dashboard_follows_airflows_dark_mode(ui, sub_stack, shots, title, luminance):
    page = ui
    page.emulate_media(color_scheme="light")  # the system says light: only Airflow's toggle can make it dark
    page.get_by_role("link", name="Value Streams").click()
    frame = page.frame_locator("iframe[title='Value Streams']")
    heading = frame.get_by_role("heading", name="Value streams")
    expect(heading).to_be_visible()
    body, text, card = luminance(heading)
    assert body > 0.8 and contrast(text, card) >= 7, (body, text, card)

    # Airflow's own toggle, as a person uses it: the user menu's Appearance, Dark Mode
    set_mode(page, "Dark Mode")
    expect(page.locator("html.dark")).to_have_count(1)
    expect(frame.locator("html[data-theme='dark']")).to_have_count(1)  # the open page turned with it
    body, text, card = luminance(heading)
    assert body < 0.05, f"the dashboard's background is dark (relative luminance {body:.3f})"
    assert contrast(text, card) >= 7, f"its text is readable on its cards ({contrast(text, card):.1f}:1)"
    for cell in (frame.locator("table.stages td").first, frame.locator("a.title").first):
        _, fg, bg = luminance(cell)
        assert contrast(fg, bg) >= 4.5, "table text and links readable too"
    shots(page, "home-3-value-streams-dark")

    # a page opened later comes dark too
    frame.locator("a.stages-link").first.click()
    expect(frame.locator("html[data-theme='dark'] .tl")).to_be_visible()
    shots(page, "home-4-run-stages-dark")

    set_mode(page, "Light Mode")
    expect(frame.locator("html[data-theme='light']")).to_have_count(1)
    body, _, _ = luminance(frame.locator("h1").first)
    assert body > 0.8


def set_mode(page, label: str) -> None:
    page.get_by_role("button", name="User").click()
    page.get_by_role("menuitem", name="Appearance").click()
    page.get_by_role("menuitemradio", name=label).click()
    page.keyboard.press("Escape")


def test_links_under_a_base_path_never_leave_it(ui, sub_stack, title):
    """Every address a dashboard page carries (links, the form, images) is under the base path."""
    page = ui
    asset_id, run_id = title
    for path in ("mediaflow/", f"mediaflow/runs/{DAG_ID}/{quote(run_id, safe='')}", "mediaflow/runs/nope/nope"):
        page.goto(path)
        found = page.locator("a[href], form[action], img[src]").evaluate_all(
            "els => els.map(e => e.getAttribute('href') || e.getAttribute('action') || e.getAttribute('src'))"
        )
        assert found
        outside = [u for u in found if not (u.startswith(f"{BASE}/") or u.startswith("?"))]
        assert outside == [], path
