"""A night at the scale users run it, on the real stack: 64 generated deliveries dropped at once (mixed codecs and
containers from 360p to 1080p, captions, extra audio, broken uploads, titles for a person; samples.generate_night)
and run as `make run DELIVERIES=DIR` runs them: one nightly batch, one value-stream run per valid delivery. Every
delivery ends with the status and reason it should have, none `failed`; the batch run succeeded; no DAG was
deactivated and no DAG file parse was killed meanwhile. No timing assertions: the time and CPU it took are printed
(`-s`) for docs/performance.md. The titles are 2-4 s, mostly small, a few 1080p, to keep `make test` cheap;
`make bench BENCH=night` runs the long ones."""

from __future__ import annotations

import time

import pytest

from mediaflow.store import Buckets
from mediaflow_dev import bench, runner, samples

pytestmark = pytest.mark.integration

N = 64  # the issue: at least 60 at once
HEIGHTS = {360: 6, 480: 3, 720: 2, 1080: 1}  # mostly small, a few 1080p


@pytest.fixture(scope="module")
def night(stack, api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("night") / "deliveries"
    expected = samples.generate_night(folder, N, seed=17, seconds=(2.0, 4.0), heights=HEIGHTS, broken_share=0.125,
                                      distinct=12)  # fmt: skip
    roots = [p for p in stack.status().values() if p]
    kills_before = bench.dag_processor_kills(stack)
    cpu0, began = bench.tree_cpu_s(roots), time.monotonic()
    runs = runner.submit(stack, folder)  # uploads, runs the batch (raises when the batch run failed), maps the runs
    done = runner.wait(stack, runs)  # no time limit: waits while the night progresses (stall detection: runner.wait)
    summary = runner.summarize(stack, runs, done)
    wall, cpu = time.monotonic() - began, bench.tree_cpu_s(roots) - cpu0
    counts: dict[str, int] = {}
    for a in summary["assets"]:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    print(f"\nnight of {N} deliveries: {wall:.0f} s wall, {cpu:.0f} CPU s in the stack ({cpu / N:.1f} per delivery, "
          f"ffmpeg included), {counts}")  # fmt: skip
    marker = next(runner._marker(stack.s3_client(), Buckets.from_env(), d.delivery_id) for d in expected
                  if d.status != "rejected")  # fmt: skip
    return {"expected": expected, "summary": summary, "done": done, "runs": runs, "batch_run_id": marker["batch_run_id"],
            "kills": bench.dag_processor_kills(stack) - kills_before}  # fmt: skip


def test_every_delivery_ends_with_its_status_and_reason(night):
    by_id = {a["delivery_id"]: a for a in night["summary"]["assets"]}
    failed = {d: a["reasons"] for d, a in by_id.items() if a["status"] == "failed"}
    assert not failed, f"the system failed these deliveries: {failed}"
    wrong = []
    for d in night["expected"]:
        a = by_id.get(d.delivery_id)
        if a is None:
            wrong.append((d.delivery_id, d.kind, "no outcome at all"))
        elif a["status"] != d.status or (d.reason and not any(d.reason in r for r in a["reasons"])):
            wrong.append(
                (d.delivery_id, d.kind, f"expected {d.status} ({d.reason}), got {a['status']}: {a['reasons']}")
            )
    assert not wrong, wrong
    statuses = {d.status for d in night["expected"]}
    assert statuses == {"published", "awaiting_review", "rejected"}  # the night held every kind of outcome
    for d in night["expected"]:
        if d.status == "published":
            assert by_id[d.delivery_id]["published"], d  # and something is live for each published title


def test_the_batch_run_succeeded_and_took_every_delivery(night, api):
    run = api.dag_run(runner.BATCH_DAG_ID, night["batch_run_id"])
    assert run["state"] == "success"
    assert len(night["runs"]) == N  # every delivery: a value-stream run, or refused by the batch with its reason
    for _, _dag_id, run_id, spec in night["runs"]:
        if spec is not None:
            state = night["done"][run_id][0]["state"]
            assert state in ("success", "running"), (run_id, state)  # running: parked on a person's review


def test_no_dag_was_deactivated_and_no_parse_killed(night, api):
    assert bench.deactivated_dags(api) == []
    assert night["kills"] == 0, "the DAG processor killed a parse that ran past its timeout during the night"
