"""The value-stream report over generated and hand-built metric tables: the value stream map's numbers, a page with
no script and no external URL, hostile names made inert (in the HTML and inside the SVG text), empty tables,
Parquet round trips, the owners' digest, and the batch burn-down (forecast band, p50 line, the actual so far) in
the report and one line of it in the digest."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mediaflow import metrics, outlook, report

UNTIL = datetime(2026, 11, 28, 12, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=30)
WINDOW = {"since": "2026-10-29T12:00:00Z", "until": "2026-11-28T12:00:00Z"}
HOSTILE = "<script>alert(1)</script>"
STAGE_SLAS = {"ingest": 120, "transcode": 1200, "localize": 300, "compliance": 300, "review": 3600, "publish": 120}


def computed(attempts: pd.DataFrame, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    slas = {s: STAGE_SLAS for s in set(runs["stream"])}
    return metrics.compute(attempts, runs, slas, since=SINCE, until=UNTIL, now=UNTIL)


@pytest.fixture(scope="module")
def tables():
    return computed(*metrics.synthetic_ledger(20000, until=UNTIL))


@pytest.fixture(scope="module")
def page(tables):
    return report.render_html(tables, generated_at="2026-11-28T12:00:00Z", window=WINDOW)


@pytest.fixture(scope="module")
def hostile_tables():
    """A stream and an asset named like a script, and a stream whose "$" would be TeX to matplotlib."""
    attempts, runs = metrics.synthetic_ledger(1500, until=UNTIL, streams=(HOSTILE, "news_$x$"), days=3)
    runs["asset_id"] = HOSTILE
    return computed(attempts, runs)


def stages_table(rows: list[tuple]) -> pd.DataFrame:
    cols = ["stage", "count", "cycle_median_s", "active_median_s", "wait_median_s", "attempts_per_title",
            "complete_accurate_pct", "wip", "sla_attainment_pct"]  # fmt: skip
    return pd.DataFrame([dict(zip(cols, r, strict=False), stream="news_clip") for r in rows])


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
    assert shown[i : i + 6] == ["lead time", "1 h 04 m", "value-added", "51 m 10 s", "VA / lead time", "79.3 %"]
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


def test_page_inlines_every_chart_with_no_script_and_no_external_url(tables, page):
    streams = report.stream_names(tables)
    assert len(streams) == 3
    assert page.count("<svg") == len(streams) * (1 + len(report.CHARTS))
    # no URL at all: the SVGs lose their prolog, metadata and namespace declarations; big scatters are data: images
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<?xml" not in page and "<link" not in page and "@import" not in page
    assert all(
        href.startswith("/dags/value_stream__") and "/runs/" in href
        for href in re.findall(r'href="([^"#][^"]*)"', page)
    )
    # element ids stay unique across the many inlined charts, and every reference finds its element
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page)) <= set(ids)
    assert "anomalies today" in page and "Latest titles" in page and "docs/analytics.md" in page


def test_page_lists_the_latest_titles_with_links_to_their_runs(tables, page):
    latest = tables["runs"].head(report.LATEST_TITLES)
    for dag_id, run_id, asset in latest[["dag_id", "run_id", "asset_id"]].itertuples(index=False):
        assert f'<a href="/dags/{dag_id}/runs/{run_id}">{run_id}</a>' in page
        assert f"<td>{asset}</td>" in page
    assert tables["runs"]["asset_id"].iloc[report.LATEST_TITLES] not in page


def test_hostile_names_are_inert_in_the_page_the_svg_and_the_mail(hostile_tables):
    page = report.render_html(hostile_tables, title=HOSTILE, generated_at=HOSTILE, window={"since": HOSTILE})
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    svg = report.vsm_svg(hostile_tables, HOSTILE)
    assert "<script" not in svg and f"{HOSTILE}: value stream map (medians per stage)" in [
        t.replace("&lt;", "<").replace("&gt;", ">") for t in texts(svg)]  # fmt: skip
    assert "news_$x$: value stream map (medians per stage)" in texts(report.vsm_svg(hostile_tables, "news_$x$"))
    # the run link quotes the dag id instead of breaking out of the attribute
    assert "/dags/value_stream__%3Cscript%3Ealert%281%29%3C%2Fscript%3E/runs/" in page
    mail = report.digest_mail(hostile_tables, owners=["o@example.com"], day="2026-11-28", report_link='x" onclick="y')
    assert "<script" not in mail["html"] and 'href="x&#34; onclick=&#34;y"' in mail["html"]


@pytest.mark.parametrize("empty", ["computed", "missing"])
def test_empty_tables_say_there_is_no_data_yet(empty, tmp_path):
    _, runs = metrics.synthetic_ledger(100, until=UNTIL)
    attempts = pd.DataFrame(columns=["dag_id", "run_id", "task_id", "map_index", "try_number", "stream", "stage",
                                     "state", "started_at", "ended_at"])  # fmt: skip
    tables = computed(attempts, runs.iloc[0:0]) if empty == "computed" else {}
    page = report.render_html(tables, generated_at="2026-11-28T12:00:00Z", window=WINDOW)
    assert "No data yet" in page and "<svg" not in page and "<script" not in page
    mail = report.digest_mail(tables, owners=["o@example.com"], day="2026-11-28", report_link=None)
    assert mail["subject"] == "[mediaflow] value streams digest 2026-11-28: 0 finished, 0 anomalies"
    assert "No data yet" in mail["html"] and "<a " not in mail["html"]
    assert all(len(pd.read_parquet(p)) == 0 for p in report.write_parquet(tables, tmp_path).values())
    for stream_chart in (report.vsm_svg, *report.CHARTS):
        assert "no data yet" in stream_chart(tables, "news_clip")


def test_a_stream_with_runs_but_nothing_finished_yet_renders():
    attempts, runs = metrics.synthetic_ledger(200, until=UNTIL, days=1)
    in_progress = runs["state"] == "running"
    tables = computed(attempts[attempts["run_id"].isin(runs.loc[in_progress, "run_id"])], runs[in_progress])
    page = report.render_html(tables, generated_at="now", window=WINDOW)
    assert page.count("<svg") == len(report.stream_names(tables)) * (1 + len(report.CHARTS))
    assert "no data yet" in report.lead_time_svg(tables, report.stream_names(tables)[0])


def test_parquet_round_trips_every_table(tables, tmp_path):
    paths = report.write_parquet(tables, tmp_path / "data")
    assert set(paths) == set(tables)
    for name, frame in tables.items():
        back = pd.read_parquet(paths[name])
        assert len(back) == len(frame) and list(back.columns) == list(frame.columns), name
    # the outcome counts: ints with None (runs still going) stay whole numbers
    runs = pd.read_parquet(paths["runs"])
    assert str(runs["reviews_total"].dtype) == "Int64"
    assert runs["reviews_total"].isna().sum() == tables["runs"]["reviews_total"].isna().sum()


def test_digest_names_the_days_numbers_and_every_anomaly(tables):
    mail = report.digest_mail(tables, owners=["a@example.com", "b@example.com"], day="2026-11-27",
                              report_link="https://reports.example.com/value-streams/index.html")  # fmt: skip
    finished = tables["runs"]["finished_at"].dt.strftime("%Y-%m-%d").eq("2026-11-27").sum()
    anomalies = tables["anomalies"]
    assert len(anomalies) > 0
    assert mail["to"] == ["a@example.com", "b@example.com"]
    assert (
        mail["subject"]
        == f"[mediaflow] value streams digest 2026-11-27: {finished} finished, {len(anomalies)} anomalies"
    )
    html = mail["html"]
    for stream in report.stream_names(tables):
        assert re.search(rf"<li>{stream}: \d+ finished · lead time .+ · flow efficiency .+ % · SLA \d+ of \d+ stages missed"
                         rf" \(.+ % met\) · bottleneck \w+ \(wait .+ \+ active .+\)</li>", html)  # fmt: skip
    for a in anomalies.itertuples():
        assert f"<td>{a.stream}</td><td>{a.stage}</td>" in html and f"<td>{a.run_id}</td>" in html
        assert f"{report.human_duration(a.cycle_s)} / {report.human_duration(a.cycle_limit_s)}" in html
    assert '<a href="https://reports.example.com/value-streams/index.html">' in html


def batch_tables() -> dict[str, pd.DataFrame]:
    """A batch of 4 titles from 11:30: one ended at 11:50, 3 open at noon; the forecast: the last done by 12:20
    (p50) or 12:30 (p85)."""
    at = lambda minutes: pd.Timestamp(UNTIL) + pd.Timedelta(minutes=minutes)  # noqa: E731
    actual = [("actual", at(m), n, None, None, None) for m, n in ((-30, 1), (-25, 4), (-10, 3), (0, 3))]
    band = [("forecast", at(m), None, lo, mid, hi) for m, lo, mid, hi in ((0, 3, 3, 3), (10, 1, 2, 3), (20, 0, 1, 2),
                                                                         (30, 0, 0, 1))]  # fmt: skip
    summary = {"as_of": "2026-11-28T12:00:00Z", "titles": 3, "batch_titles": 4, "batch_start": "2026-11-28T11:30:00Z",
               "p50_at": "2026-11-28T12:20:00Z", "p85_at": "2026-11-28T12:30:00Z", "p50_s": 1200.0, "p85_s": 1800.0,
               "basis": "500 replications over 12 finished runs of news_clip; slots media 2"}  # fmt: skip
    return {"burndown": pd.DataFrame(actual + band, columns=outlook.BURNDOWN_COLUMNS),
            "batch_forecast": pd.DataFrame([summary])}  # fmt: skip


def test_the_report_has_the_batch_burndown_with_its_band_its_p50_and_the_actual(tables, tmp_path):
    # through Parquet, as the metrics job hands its tables to the report
    back = {n: pd.read_parquet(p) for n, p in report.write_parquet(batch_tables(), tmp_path).items()}
    page = report.render_html({**tables, **back}, generated_at="2026-11-28T12:00:00Z", window=WINDOW)
    assert "<h2>Batch forecast</h2>" in page
    assert ("Batch forecast: 3 titles still to finish; the last one done by 12:20 (p50) / 12:30 (p85) UTC (500 "
            "replications over 12 finished runs of news_clip; slots media 2).") in page  # fmt: skip
    svg = report.burndown_svg(back)
    assert svg in page and page.count("<svg") == 3 * (1 + len(report.CHARTS)) + 1
    for part in ("forecast-band", "forecast-p50", "actual"):
        assert re.search(rf'<g id="c[0-9a-f]{{10}}-{part}"', svg), part
    assert {"Batch burn-down: titles remaining", "forecast p15–p85", "forecast p50", "actual"} <= set(texts(svg))
    assert "<script" not in page.lower() and "http://" not in page


def test_without_a_forecast_the_report_says_so_and_keeps_the_rest(tables):
    empty = {"burndown": pd.DataFrame(columns=outlook.BURNDOWN_COLUMNS),
             "batch_forecast": pd.DataFrame([{"titles": 0, "basis": "no title queued or running: nothing to forecast"}])}  # fmt: skip
    page = report.render_html({**tables, **empty}, generated_at="now", window=WINDOW)
    assert "Batch forecast: no title queued or running: nothing to forecast." in page
    assert "no data yet" in report.burndown_svg(empty)
    assert "<h2>Batch forecast</h2>" not in report.render_html(tables, generated_at="now", window=WINDOW)


def test_the_digest_has_one_line_of_the_batch_forecast(tables):
    mail = report.digest_mail({**tables, **batch_tables()}, owners=["o@example.com"], day="2026-11-27",
                              report_link=None)  # fmt: skip
    lines = re.findall(r"<li>(Batch forecast: [^<]*)</li>", mail["html"])
    assert lines == ["Batch forecast: 3 titles still to finish; the last one done by 12:20 (p50) / 12:30 (p85) UTC "
                     "(500 replications over 12 finished runs of news_clip; slots media 2)."]  # fmt: skip
