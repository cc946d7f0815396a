"""The Trigger form of a value-stream DAG, used as a person uses it: real Debian chromium driven by Playwright
against a real stack. Log in, open the DAG, open Trigger, fill the form, trigger, see the run; then type bad
values and read the form's validation message. Screenshots: out/ui/*.png.

The delivery does not exist on this stack, so the run will end `rejected`; the test does not wait for that.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration

DAG_ID = "value_stream__news_clip"


def run_count(api) -> int:
    return api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1")["total_entries"]


def open_trigger_form(page):
    page.goto(f"/dags/{DAG_ID}")
    expect(page.get_by_text(DAG_ID).first).to_be_visible()
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Trigger Dag - {DAG_ID}")).to_be_visible()
    return dialog


def test_trigger_a_title_from_the_form_and_see_validation(page, stack, api, shots, log_in):
    api.wait_for_dags([DAG_ID])
    log_in(page, stack.password())
    expect(page.get_by_role("link", name="Dags").first).to_be_visible()

    # --- a good trigger: every field titled and described, the run appears
    dialog = open_trigger_form(page)
    for title in ("Delivery", "Priority", "Locales", "Reviewer"):
        expect(dialog.get_by_text(re.compile(rf"^{title}\s*\*?$"))).to_be_visible()  # a required field has a *
    expect(dialog.get_by_text("Delivery id: the folder name under deliveries/")).to_be_visible()
    expect(dialog.get_by_text("Empty: every locale in the delivery")).to_be_visible()
    expect(dialog.get_by_text("This field is required")).to_be_visible()  # delivery has no default
    before = run_count(api)

    dialog.locator("#element_delivery").press_sequentially("ui-form-delivery")
    dialog.get_by_role("combobox").click()  # the priority dropdown shows the labels
    page.get_by_role("option", name="Urgent (ahead of the batch)").wait_for()
    page.get_by_role("option", name="High", exact=True).click()
    dialog.locator("#element_locales").press_sequentially("es-ES")
    dialog.locator("#element_reviewer").press_sequentially("admin")
    expect(dialog.get_by_text("This field is required")).to_have_count(0)
    shots(page, "1-trigger-form-filled")
    dialog.get_by_role("button", name="Trigger", exact=True).click()

    # the UI opens the new run: its id in the address and on the page
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/.+"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    assert run_id.startswith("manual__")
    expect(page.get_by_text(run_id).first).to_be_visible()
    expect(page.get_by_text("Dag run has been successfully triggered").first).to_be_visible()
    expect(page.get_by_role("cell", name="ingest.ingest_delivery")).to_be_visible()  # its task instances
    shots(page, "2-run-page")

    run = api.dag_run(DAG_ID, run_id)
    assert run is not None, f"{run_id} not found through the REST API"
    assert run["run_type"] == "manual" and run["triggered_by"] == "ui"
    assert run["conf"] == {
        "delivery": "ui-form-delivery",
        "priority": "high",
        "locales": ["es-ES"],
        "reviewer": "admin",
    }
    assert run_count(api) == before + 1

    # --- bad values are refused when triggering; the form says which field and why, and no run starts
    dialog = open_trigger_form(page)
    dialog.locator("#element_delivery").press_sequentially("../etc")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    refusal = dialog.get_by_text("Invalid input for param delivery: '../etc' does not match")
    expect(refusal).to_be_visible()
    refusal.scroll_into_view_if_needed()
    # .first: while the toast animates in, the UI can render it twice for a moment
    toast = page.get_by_role("status").filter(has_text="Failed to Trigger Dag").first
    expect(toast).to_be_visible()
    shots(page, "3-bad-delivery-refused")
    page.mouse.move(5, 5)  # the toast lies over the Trigger button and stays while the pointer rests on it
    expect(toast).to_be_hidden(timeout=20_000)

    dialog.locator("#element_delivery").fill("ui-form-delivery")
    dialog.locator("#element_locales").press_sequentially("es_ES")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    refusal = dialog.get_by_text("Invalid input for param locales: 'es_ES' does not match")
    expect(refusal).to_be_visible()
    page.mouse.move(700, 300)
    page.mouse.wheel(0, -3000)  # scroll the form back up to the message
    shots(page, "4-bad-locale-refused")
    assert page.url.endswith(f"/dags/{DAG_ID}"), "a refused trigger stays in the form"
    assert run_count(api) == before + 1
