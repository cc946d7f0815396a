"""The value-stream report over generated and hand-built metric tables: durations for people, the value stream map's
numbers, charts as inline SVG."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mediaflow import metrics, report

UNTIL = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
SINCE = UNTIL - timedelta(days=30)
STAGE_SLAS = {"ingest": 120, "transcode": 1200, "localize": 300, "compliance": 300, "review": 3600, "publish": 120}


def computed(attempts: pd.DataFrame, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    slas = {s: STAGE_SLAS for s in set(runs["stream"])}
    return metrics.compute(attempts, runs, slas, since=SINCE, until=UNTIL, now=UNTIL)


@pytest.fixture(scope="module")
def tables():
    return computed(*metrics.synthetic_ledger(20000, until=UNTIL))


def stages_table(rows: list[tuple]) -> pd.DataFrame:
    cols = ["stage", "count", "cycle_median_s", "active_median_s", "wait_median_s", "attempts_per_title",
            "complete_accurate_pct", "wip", "sla_attainment_pct"]  # fmt: skip
    return pd.DataFrame([dict(zip(cols, r), stream="news_clip") for r in rows])


def texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.parametrize("seconds, shown", [(0, "0 s"), (42.4, "42 s"), (250, "4 m 10 s"), (7500, "2 h 05 m"),
                                            (97200, "1 d 3 h"), (3599.6, "1 h 00 m"), (None, "–"), (float("nan"), "–")])  # fmt: skip
def test_human_duration(seconds, shown):
    assert report.human_duration(seconds) == shown


def test_vsm_of_hand_built_stages_in_stage_order_with_the_totals():
    # out of order on purpose, with a stage the specs add after the standard ones
    stages = stages_table([
        ("transcode", 10, 3600, 3000, 120, 1.5, 50.0, 2, 80.0),
        ("legal_hold", 4, 60, 30, 30, 1.0, 100.0, 0, None),
        ("ingest", 10, 50, 40, 10, 1.0, 100.0, 1, 100.0),
    ])  # fmt: skip
    svg = report.vsm_svg({"stages": stages}, "news_clip")
    shown = texts(svg)
    assert [t for t in shown if t in ("ingest", "transcode", "legal_hold")] == ["ingest", "transcode", "legal_hold"]
    # lead time = waits + cycles = 10 + 50 + 120 + 3600 + 30 + 60; value-added = 40 + 3000 + 30; ratio 3070 / 3870
    i = shown.index("lead time")
    assert shown[i:i + 6] == ["lead time", "1 h 04 m", "value-added", "51 m 10 s", "VA / lead time", "79.3 %"]
    assert {"1 h 00 m", "50 m 00 s", "2 m 00 s", "1.50", "50.0 %", "WIP 2", "WIP 1", "10"} <= set(shown)
    assert "<svg" in svg and "<?xml" not in svg


def test_vsm_of_generated_ledger_names_every_stage_and_sums_the_medians(tables):
    for stream in report.stream_names(tables):
        rows = metrics.value_stream_map(tables["stages"], stream)
        shown = texts(report.vsm_svg(tables, stream))
        assert all(r["stage"] in shown for r in rows)
        lead = sum(r["wait_median_s"] + r["cycle_median_s"] for r in rows)
        value_added = sum(r["active_median_s"] for r in rows)
        i = shown.index("lead time")
        assert shown[i + 1] == report.human_duration(lead)
        assert shown[i + 3] == report.human_duration(value_added)
        assert shown[i + 5] == f"{100 * value_added / lead:.1f} %"


def test_each_chart_is_an_inline_svg_whose_text_stays_text(tables):
    stream = report.stream_names(tables)[0]
    for chart in (report.vsm_svg, *report.CHARTS):
        svg = chart(tables, stream)
        assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>"), chart.__name__
        assert "http" not in svg and "<text" in svg and "no data yet" not in svg, chart.__name__