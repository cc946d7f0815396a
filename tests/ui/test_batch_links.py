"""A batch run and the value-stream runs it started link to each other in the Airflow UI, used as a person does: real
Debian chromium driven by Playwright against the real stack. Two real 2-s clips are delivered and the nightly content
batch is triggered; the batch run's page shows its note with a link to each run it started (and to the run list
filtered on its run ids); following one opens that run's page, whose note links back to the batch run. The notes are
written by the batch through Airflow's official client (mediaflow_airflow.runs_api). Screenshots: out/ui/*.png."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from mediaflow_dev import runner

pytestmark = pytest.mark.integration

BATCH_DAG = runner.BATCH_DAG_ID


def run_path(dag_id: str, run_id: str) -> str:
    return f"dags/{dag_id}/runs/{quote(run_id, safe='')}"


@pytest.fixture(scope="module")
def batch(stack, api, tmp_path_factory, clip_delivery) -> tuple[str, dict]:
    """Two news_clip deliveries (urgent, with rights, so they publish and wait for nobody) through one content batch
    run. (batch run id, {delivery id: (dag id, run id)})"""
    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    root = tmp_path_factory.mktemp("batch-links")
    ids = [f"ui-links-{i}-{stamp}" for i in (1, 2)]
    avails = ["asset_id,territory,channel,window_start,window_end,exclusive"]
    for delivery_id in ids:
        folder = clip_delivery(root, delivery_id, f"Batch links clip {delivery_id}")
        manifest = json.loads((folder / "manifest.json").read_text())
        # urgent: listed first in the batch's note, whatever else the shared stack's batch takes along
        manifest["metadata"] = {"priority": "urgent"}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        avails.append(f"{delivery_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false")
    (root / "avails.csv").write_text("\n".join(avails) + "\n")
    # in the whole suite the shared stack's landing holds deliveries other tests uploaded without a batch (they
    # trigger their runs directly): one batch takes those first, so the batch under test starts exactly ours
    runner.run_content_batch(stack)
    runs = runner.submit(stack, root)
    started = {d: (dag_id, run_id) for d, dag_id, run_id, spec in runs if spec is not None and d in ids}
    assert set(started) == set(ids), (list(runs), runs.pending)
    return runs.batch_run_id, started


def test_a_batch_runs_page_links_to_the_runs_it_started_and_each_links_back(page, stack, batch, log_in, shots):
    batch_run_id, started = batch
    log_in(page, stack.password())
    page.goto(run_path(BATCH_DAG, batch_run_id))
    expect(page.get_by_text(f"Started {len(started)} value-stream runs", exact=False).first).to_be_visible()
    for delivery_id, (dag_id, run_id) in started.items():
        # relative links: the UI's <base href> resolves them, under a base-URL subpath too
        expect(page.get_by_role("link", name=delivery_id, exact=True)).to_have_attribute(
            "href", run_path(dag_id, run_id)
        )
    prefix = next(iter(started.values()))[1].rsplit("__", 1)[0] + "__"  # nightly__<day>__
    every = page.get_by_role("link", name="all runs named", exact=False)
    expect(every).to_have_attribute("href", f"dag_runs?run_id_pattern={quote(prefix)}")
    shots(page, "batch_links_batch_run")
    with page.context.expect_page() as opened:  # the run list, filtered on the batch's run ids
        every.click()
    listed = opened.value
    listed.wait_for_load_state()
    for _dag_id, run_id in started.values():
        expect(listed.get_by_role("link", name=run_id, exact=True)).to_be_visible()
    shots(listed, "batch_links_run_list")
    listed.close()

    delivery_id, (dag_id, run_id) = next(iter(started.items()))
    with page.context.expect_page() as opened:  # the UI opens a note's links in a new tab
        page.get_by_role("link", name=delivery_id, exact=True).click()
    run_page = opened.value
    run_page.wait_for_load_state()
    assert run_page.url == f"{stack.api_url}/{run_path(dag_id, run_id)}"
    expect(run_page.get_by_text(run_id, exact=True).first).to_be_visible()
    back = run_page.get_by_role("link", name=batch_run_id, exact=True)
    expect(back).to_have_attribute("href", run_path(BATCH_DAG, batch_run_id))
    expect(run_page.get_by_text("Started by batch", exact=False)).to_be_visible()
    shots(run_page, "batch_links_started_run")

    with run_page.context.expect_page() as opened:
        back.click()
    batch_page = opened.value
    batch_page.wait_for_load_state()
    assert batch_page.url == f"{stack.api_url}/{run_path(BATCH_DAG, batch_run_id)}"
    expect(batch_page.get_by_role("link", name=delivery_id, exact=True)).to_be_visible()
