"""`make bench`: benchmarks, each figure beside its baseline, written to out/bench.json (keys merged, so one
benchmark can be re-run alone: `python -m mediaflow.bench metrics`) and printed as a table.

Benchmarks never run inside `make test`. Each measurement runs in a fresh process (its own peak memory), repeated;
min / median / max are reported with the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mediaflow.devstack import PROJECT

UNTIL = datetime(2026, 11, 28, 21, 0, tzinfo=timezone.utc)


def _metrics_once(rows: int) -> dict:
    """One run in this process: generate the ledger (not timed), then time compute() over 30 days of it."""
    from mediaflow import metrics

    attempts, runs = metrics.synthetic_ledger(rows, until=UNTIL)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    tables = metrics.compute(attempts, runs, {}, since=UNTIL - timedelta(days=30), until=UNTIL, now=UNTIL)
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s": took, "peak_mb": peak, "generator_peak_mb": before, "rows": len(attempts), "spans": len(tables["spans"])}


def _reference_once(rows: int) -> dict:
    """The baseline: the row-at-a-time reference (mediaflow.stages.stage_spans, one run at a time in Python, as
    summary.json uses it) over the same kind of ledger."""
    from mediaflow import metrics
    from mediaflow.spec import STAGE_ORDER
    from mediaflow.stages import stage_spans

    attempts, runs = metrics.synthetic_ledger(rows, until=UNTIL)
    queued = dict(zip(runs["run_id"], runs["queued_at"], strict=True))
    began = time.perf_counter()
    recs = attempts.rename(columns={"started_at": "start", "ended_at": "end"}).to_dict("records")
    by_run: dict[str, list] = {}
    for r in recs:
        r["end"] = None if r["end"] is None or r["end"] != r["end"] else r["end"]
        by_run.setdefault(r["run_id"], []).append(r)
    n = sum(len(stage_spans(rs, stage_order=list(STAGE_ORDER), queued_at=queued[run], slas_s={}, now=UNTIL))
            for run, rs in by_run.items())  # fmt: skip
    return {"s": time.perf_counter() - began, "rows": len(attempts), "spans": n}


def _child(kind: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "mediaflow.bench", "--child", kind, "--rows", str(rows)],
                         capture_output=True, text=True, check=True, env=os.environ)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def bench_metrics(repeat: int = 3, rows: int = 1_000_000, reference_rows: int = 100_000) -> dict:
    runs = [_child("metrics", rows) for _ in range(repeat)]
    ref = _child("reference", reference_rows)
    ref_1m = ref["s"] * rows / ref["rows"]  # the reference is linear in rows: measured on a slice, scaled
    fig = _spread([r["s"] for r in runs])
    return {
        **fig,
        "peak_mb": _spread([r["peak_mb"] for r in runs]),
        "rows": runs[0]["rows"],
        "spans": runs[0]["spans"],
        "goal": {"s": 5.0, "peak_mb": 1536},
        "baseline": {"name": "row-at-a-time reference (mediaflow.stages.stage_spans per run), scaled from "
                             f"{ref['rows']:,} rows", "s": round(ref_1m, 2), "speedup": round(ref_1m / fig["median"], 1)},
        "cores": os.cpu_count(),
    }  # fmt: skip


BENCHMARKS = {"metrics": ("metrics_1m_rows_s", bench_metrics)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps({"metrics": _metrics_once, "reference": _reference_once}[args.child](args.rows)))
        return 0
    out = Path(os.environ.get("MEDIAFLOW_OUT_DIR") or PROJECT / "out") / "bench.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.names or list(BENCHMARKS):
        key, fn = BENCHMARKS[name]
        print(f"[bench] {name} ...", flush=True)
        results[key] = fn()
    results["machine"] = {"cores": os.cpu_count(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'figure':<22} {'median':>8} {'min':>8} {'max':>8}  {'goal':>6}  baseline")
    for key, fig in results.items():
        if isinstance(fig, dict) and "median" in fig:
            base = fig.get("baseline") or {}
            print(f"{key:<22} {fig['median']:>8} {fig['min']:>8} {fig['max']:>8}  {fig.get('goal', {}).get('s', ''):>6}  "
                  f"{base.get('s', '')} s ({base.get('speedup', '')}x slower): {base.get('name', '')}")  # fmt: skip
            if "peak_mb" in fig:
                print(f"{'  peak memory MB':<22} {fig['peak_mb']['median']:>8} {fig['peak_mb']['min']:>8} {fig['peak_mb']['max']:>8}  "
                      f"{fig.get('goal', {}).get('peak_mb', ''):>6}")  # fmt: skip
    print(f"\n[bench] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
