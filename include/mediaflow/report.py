"""The value-stream analytics report over the tables of `mediaflow.metrics.compute`: one self-contained HTML page
(inline CSS, inline SVG charts, no script, no external URL), its data as Parquet and JSON, and the owners' daily
digest mail. Plain Python, no Airflow imports.

Every table may be empty (a new stack): each part then says "no data yet" instead of failing. Every string that
comes from data (stream, stage, asset, run names) is escaped, in the HTML by Jinja2's autoescape and inside the
SVG text by matplotlib's XML writer.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import matplotlib
import pandas as pd
from jinja2 import Environment
from markupsafe import Markup
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from mediaflow import metrics, outlook
from mediaflow.alerts import run_url
from mediaflow.spec import STAGE_ORDER

WAIT_COLOR, WAIT_TEXT, ACTIVE_COLOR, LINE_COLOR = "#e8a33d", "#a8650a", "#3b6ea5", "#444444"
NO_DATA = "no data yet"
LATEST_TITLES = 50

# Text stays text (small, searchable, escaped), a fixed salt keeps the output the same for the same data, and a
# name with "$" in it is not read as TeX.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "mediaflow", "text.parse_math": False, "font.size": 9,
       "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "axes.spines.top": False,
       "axes.spines.right": False, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.titlelocation": "left",
       "legend.frameon": False}  # fmt: skip


# ---------------------------------------------------------------- formatting


def human_duration(seconds: float | None) -> str:
    """42 s, 4 m 10 s, 2 h 05 m, 1 d 3 h; "–" for a missing value."""
    if seconds is None or seconds != seconds:
        return "–"
    sign, s = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{sign}{d} d {h} h"
    if h:
        return f"{sign}{h} h {m:02d} m"
    return f"{sign}{m} m {sec:02d} s" if m else f"{sign}{sec} s"


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.1f} %"


def _ratio(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def _num(value) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _cell(column: str, value) -> str:
    """A table cell by the column's unit: *_s are durations, *_pct percentages."""
    if column.endswith("_s"):
        return human_duration(value)
    if column.endswith("_pct"):
        return _pct(value)
    return value if isinstance(value, str) else _num(value)


def _minute(iso: str | None) -> str:
    return "–" if not iso else pd.Timestamp(iso).strftime("%Y-%m-%d %H:%M")


def _heading(column: str) -> str:
    name = re.sub(r"_(s|pct)$", "", column).replace("_", " ")
    return f"{name} %" if column.endswith("_pct") else name


# ---------------------------------------------------------------- table access (columns may be missing when empty)


def _table(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    frame = tables.get(name)
    return frame if frame is not None else pd.DataFrame()


def _of(frame: pd.DataFrame, stream: str) -> pd.DataFrame:
    return frame[frame["stream"] == stream] if "stream" in frame and not frame.empty else frame.iloc[0:0]


def _rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _vsm_rows(tables: dict[str, pd.DataFrame], stream: str) -> list[dict]:
    stages = _table(tables, "stages")
    if stages.empty or "stream" not in stages:
        return []
    return sorted(
        metrics.value_stream_map(stages, stream), key=lambda r: _rank(r["stage"])
    )  # stable: others keep order


def stream_names(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Every stream that has a row in `streams` or `stages`, sorted."""
    names = set()
    for name in ("streams", "stages"):
        frame = _table(tables, name)
        if "stream" in frame:
            names |= set(frame["stream"].dropna())
    return sorted(names)


# ---------------------------------------------------------------- SVG


def _svg(fig: Figure, key: str) -> str:
    """The figure as SVG to inline in HTML: no XML prolog, no metadata, no namespace URLs (the HTML parser puts
    inline <svg> in the SVG namespace), ids prefixed with `key` so that many charts can share one page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = svg.replace("xlink:href=", "href=")
    prefix = "c" + hashlib.sha1(key.encode()).hexdigest()[:10] + "-"
    svg = (
        svg.replace(' id="', f' id="{prefix}').replace('href="#', f'href="#{prefix}').replace("url(#", f"url(#{prefix}")
    )
    return svg


def _figure(width: float, height: float) -> Figure:
    # A Figure without pyplot: no global figure registry to leak or close, no GUI backend to select.
    return Figure(figsize=(width, height), layout="constrained")


def _no_data_svg(title: str, key: str) -> str:
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 1.2)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.4, NO_DATA, ha="center", va="center", color="#777777", transform=ax.transAxes)
        return _svg(fig, key)


def _time_unit(seconds: float) -> tuple[float, str]:
    """A readable axis unit for values up to `seconds`."""
    for size, name in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if seconds >= 2 * size:
            return size, name
    return 1, "seconds"


def _date_axis(ax) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _naive_utc(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, utc=True).dt.tz_convert(None)


# ---------------------------------------------------------------- the value stream map

# layout in data units: a margin for the ladder's legend, then per stage a gap holding the WIP triangle and the
# process box; the totals box at the right end
_MARGIN, _GAP, _BOX, _TOTALS = 0.9, 1.0, 2.2, 2.9
_BOX_TOP, _BOX_BOTTOM, _HEADER = 5.0, 2.3, 0.55
_LOW, _HIGH = 0.55, 1.45  # the ladder's two levels


def vsm_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """The value stream map of `stream` in lean notation, from the stage medians: per stage a WIP triangle (titles
    in the stage now) and a process box (C/T, active, attempts per title, %C&A, count); under them the timeline
    ladder, low = wait (hand-off), high = active; at the right the totals: lead time = sum of the median waits
    and cycles, value-added time = sum of the median active times, and their ratio."""
    rows = _vsm_rows(tables, stream)
    title = f"{stream}: value stream map (medians per stage)"
    key = f"vsm-{stream}"
    if not rows:
        return _no_data_svg(title, key)
    lead = sum((r["wait_median_s"] or 0) + (r["cycle_median_s"] or 0) for r in rows)
    value_added = sum(r["active_median_s"] or 0 for r in rows)
    width = _MARGIN + len(rows) * (_GAP + _BOX) + _TOTALS
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width * 0.6, 6.2 * 0.6))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(0, 6.2)
        ax.set_axis_off()
        ax.text(0.15, 5.85, title, fontsize=11, fontweight="bold", va="center")
        ax.text(_MARGIN - 0.1, 3.65, "arrival", ha="right", va="center", fontsize=8, color="#555555")
        ax.text(_MARGIN - 0.1, _HIGH, "active", ha="right", va="center", fontsize=8, color=ACTIVE_COLOR)
        ax.text(_MARGIN - 0.1, _LOW, "wait", ha="right", va="center", fontsize=8, color=WAIT_TEXT)
        for i, r in enumerate(rows):
            x0 = _MARGIN + i * (_GAP + _BOX)
            bx = x0 + _GAP
            _wip_triangle(ax, x0 + _GAP / 2, r["wip"])
            _process_box(ax, bx, r)
            # the ladder: wait low under the triangle, active high under the box
            ax.plot([x0, bx], [_LOW, _LOW], color=WAIT_COLOR, linewidth=2.5, solid_capstyle="butt")
            ax.plot([bx, bx + _BOX], [_HIGH, _HIGH], color=ACTIVE_COLOR, linewidth=2.5, solid_capstyle="butt")
            ax.plot([bx, bx], [_LOW, _HIGH], [bx + _BOX, bx + _BOX], [_HIGH, _LOW], color="#999999", linewidth=0.8)
            ax.text(x0 + _GAP / 2, _LOW - 0.15, human_duration(r["wait_median_s"]), ha="center", va="top",
                    fontsize=8, color=WAIT_TEXT, fontweight="bold")  # fmt: skip
            ax.text(bx + _BOX / 2, _HIGH + 0.12, human_duration(r["active_median_s"]), ha="center", va="bottom",
                    fontsize=8, color=ACTIVE_COLOR, fontweight="bold")  # fmt: skip
        _totals_box(ax, width - _TOTALS + 0.25, lead=lead, value_added=value_added)
        return _svg(fig, key)


def _wip_triangle(ax, cx: float, wip) -> None:
    ax.annotate("", xy=(cx + 0.5, 3.65), xytext=(cx - 0.5, 3.65),
                arrowprops={"arrowstyle": "-|>", "color": "#999999", "linewidth": 0.8})  # fmt: skip
    ax.add_patch(Polygon([(cx - 0.28, 3.9), (cx + 0.28, 3.9), (cx, 4.4)], closed=True, facecolor="#fde9c4",
                         edgecolor=WAIT_COLOR, linewidth=1.2, zorder=3))  # fmt: skip
    ax.text(cx, 4.07, "I", ha="center", va="center", fontsize=8, fontweight="bold", zorder=4)
    ax.text(cx, 3.4, f"WIP {_num(wip)}", ha="center", va="top", fontsize=8)


def _process_box(ax, x: float, r: dict) -> None:
    ax.add_patch(Rectangle((x, _BOX_BOTTOM), _BOX, _BOX_TOP - _BOX_BOTTOM, facecolor="white", edgecolor=LINE_COLOR))
    ax.add_patch(Rectangle((x, _BOX_TOP - _HEADER), _BOX, _HEADER, facecolor=ACTIVE_COLOR, edgecolor=LINE_COLOR))
    name = r["stage"] if len(r["stage"]) <= 22 else r["stage"][:21] + "…"
    ax.text(x + _BOX / 2, _BOX_TOP - _HEADER / 2, name, ha="center", va="center", color="white", fontweight="bold")
    lines = [("C/T", human_duration(r["cycle_median_s"])), ("active", human_duration(r["active_median_s"])),
             ("attempts/title", _num(r["attempts_per_title"])), ("%C&A", _pct(r["complete_accurate_pct"])),
             ("count", _num(r["count"]))]  # fmt: skip
    for j, (label, value) in enumerate(lines):
        y = _BOX_TOP - _HEADER - 0.35 - j * 0.4
        ax.text(x + 0.1, y, label, va="center", fontsize=8, color="#555555")
        ax.text(x + _BOX - 0.1, y, value, va="center", ha="right", fontsize=8)


def _totals_box(ax, x: float, *, lead: float, value_added: float) -> None:
    ax.add_patch(Rectangle((x, 0.2), _TOTALS - 0.35, 1.9, facecolor="#f4f6f9", edgecolor=LINE_COLOR))
    lines = [("lead time", human_duration(lead)), ("value-added", human_duration(value_added)),
             ("VA / lead time", _ratio(value_added / lead if lead > 0 else None))]  # fmt: skip
    for j, (label, value) in enumerate(lines):
        y = 1.75 - j * 0.5
        ax.text(x + 0.12, y, label, va="center", fontsize=8.5, color="#555555")
        ax.text(x + _TOTALS - 0.47, y, value, va="center", ha="right", fontsize=8.5, fontweight="bold")
    ax.text(x, 2.3, "sums of the stage medians", fontsize=7, color="#777777")


# ---------------------------------------------------------------- charts (one stream each)


def stage_times_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """Per stage of `stream`, the median wait (hand-off) and the median active time, stacked."""
    rows = _vsm_rows(tables, stream)
    title, key = "Stage time: median wait and active", f"stage-times-{stream}"
    if not rows:
        return _no_data_svg(title, key)
    waits = [r["wait_median_s"] or 0 for r in rows]
    actives = [r["active_median_s"] or 0 for r in rows]
    size, unit = _time_unit(max(w + a for w, a in zip(waits, actives, strict=False)))
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 0.9 + 0.38 * len(rows))
        ax = fig.add_subplot()
        y = range(len(rows))
        ax.barh(y, [w / size for w in waits], color=WAIT_COLOR, label="wait (hand-off)")
        ax.barh(y, [a / size for a in actives], left=[w / size for w in waits], color=ACTIVE_COLOR, label="active")
        for yi, w, a in zip(y, waits, actives, strict=False):
            ax.text((w + a) / size, yi, " " + human_duration(w + a), va="center", fontsize=8)
        ax.set_yticks(list(y), [r["stage"] for r in rows])
        ax.invert_yaxis()
        ax.margins(x=0.18)
        ax.set_xlabel(unit)
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        return _svg(fig, key)


def sla_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """Per stage of `stream`, the share of finished spans within the stage SLA (%, 0..100)."""
    rows = _vsm_rows(tables, stream)
    title, key = "SLA attainment per stage", f"sla-{stream}"
    if not rows:
        return _no_data_svg(title, key)
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 2.8)
        ax = fig.add_subplot()
        x = range(len(rows))
        values = [r["sla_attainment_pct"] for r in rows]
        ax.bar(x, [v or 0 for v in values], color=ACTIVE_COLOR, width=0.6)
        for xi, v in zip(x, values, strict=False):
            ax.text(xi, v or 0, _pct(v) if v is not None else "no SLA", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x), [r["stage"] for r in rows])
        ax.set_ylim(0, 112)
        ax.set_yticks(range(0, 101, 25))
        ax.set_ylabel("% within SLA")
        ax.set_title(title)
        return _svg(fig, key)


def _at_least(ax, times: pd.Series, span: pd.Timedelta) -> None:
    """Widen the time axis to `span` around the data: one point, or one day, otherwise autoscales to years."""
    lo, hi = times.min(), times.max()
    if hi - lo < span:
        mid = lo + (hi - lo) / 2
        ax.set_xlim(mid - span / 2, mid + span / 2)


def lead_time_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """Lead time of each finished title of `stream` by the time it finished, with a rolling median."""
    runs = _of(_table(tables, "runs"), stream)
    title, key = "Lead time of finished titles", f"lead-time-{stream}"
    if runs.empty or "finished_at" not in runs:
        return _no_data_svg(title, key)
    done = runs[runs["finished_at"].notna() & runs["lead_time_s"].notna()]
    if done.empty:
        return _no_data_svg(title, key)
    done = pd.DataFrame({"at": _naive_utc(done["finished_at"]), "lead": done["lead_time_s"].astype(float)}).sort_values(
        "at"
    )
    size, unit = _time_unit(done["lead"].max())
    window = max(5, len(done) // 20)
    rolling = done["lead"].rolling(window, center=True, min_periods=1).median()
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 2.8)
        ax = fig.add_subplot()
        # thousands of points as vectors make a heavy page: past that they are drawn as one embedded image
        few = len(done) < 100  # a sample batch: each title visible, not a haze
        ax.scatter(done["at"], done["lead"] / size, s=28 if few else 6, alpha=0.8 if few else 0.35, color=ACTIVE_COLOR, linewidths=0,
                   label="title", rasterized=len(done) > 2000)  # fmt: skip
        ax.plot(done["at"], rolling / size, color=WAIT_COLOR, linewidth=1.8, label=f"rolling median ({window} titles)")
        _date_axis(ax)
        _at_least(ax, done["at"], pd.Timedelta(hours=1))
        ax.set_ylim(bottom=0)
        ax.set_ylabel(unit)
        ax.set_xlabel("finished (UTC)")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8, markerscale=2)
        return _svg(fig, key)


def cfd_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """The cumulative flow diagram of `stream`: titles arrived and titles through each stage, over time; the
    height of a band is the work between two steps."""
    cfd = _of(_table(tables, "cfd"), stream)
    title, key = "Cumulative flow", f"cfd-{stream}"
    if cfd.empty:
        return _no_data_svg(title, key)
    wide = cfd.assign(at=_naive_utc(cfd["at"])).pivot_table(index="at", columns="step", values="count", aggfunc="max")
    steps = sorted(wide.columns, key=lambda s: -1 if s == "arrived" else _rank(s))
    wide = wide[steps].sort_index().ffill().fillna(0)
    colors = matplotlib.colormaps["tab10"]
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 2.8)
        ax = fig.add_subplot()
        for i, step in enumerate(steps):
            lower = wide[steps[i + 1]] if i + 1 < len(steps) else 0
            label = step if step == "arrived" else f"{step} done"
            ax.fill_between(wide.index, lower, wide[step], color=colors(i % 10), alpha=0.35, linewidth=0)
            ax.plot(wide.index, wide[step], color=colors(i % 10), linewidth=1, label=label)
        _date_axis(ax)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("titles (cumulative)")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=7.5)
        return _svg(fig, key)


def throughput_svg(tables: dict[str, pd.DataFrame], stream: str) -> str:
    """Titles of `stream` finished per UTC day."""
    tp = _of(_table(tables, "throughput"), stream)
    title, key = "Throughput: titles finished per day", f"throughput-{stream}"
    if tp.empty:
        return _no_data_svg(title, key)
    days = pd.to_datetime(tp["day"])
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 2.8)
        ax = fig.add_subplot()
        ax.bar(days, tp["finished"], width=0.8, color=ACTIVE_COLOR)
        _date_axis(ax)
        _at_least(ax, days, pd.Timedelta(days=7))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("titles")
        ax.set_title(title)
        return _svg(fig, key)


CHARTS = (stage_times_svg, sla_svg, lead_time_svg, cfd_svg, throughput_svg)


def batch_summary(tables: dict[str, pd.DataFrame]) -> dict | None:
    """The batch forecast's summary (mediaflow.outlook.burndown), None when the tables hold none."""
    rows = metrics.records(_table(tables, "batch_forecast"))
    return rows[0] if rows else None


def burndown_svg(tables: dict[str, pd.DataFrame]) -> str:
    """The batch burn-down (table `burndown`, mediaflow.outlook): titles of the batch not yet ended over time, the
    actual so far as a step line, and from now the forecast: its p15..p85 band and p50 line."""
    rows = _table(tables, "burndown")
    title, key = "Batch burn-down: titles remaining", "burndown"
    if rows.empty:
        return _no_data_svg(title, key)
    at = _naive_utc(rows["at"])
    actual, band = (rows["kind"] == "actual").to_numpy(), (rows["kind"] == "forecast").to_numpy()
    value = lambda c: pd.to_numeric(rows[c], errors="coerce").astype(float)  # noqa: E731
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 2.8)
        ax = fig.add_subplot()
        if band.any():
            ax.fill_between(at[band], value("p15")[band], value("p85")[band], color=ACTIVE_COLOR, alpha=0.25,
                            linewidth=0, label="forecast p15–p85", gid="forecast-band")  # fmt: skip
            ax.plot(at[band], value("p50")[band], color=ACTIVE_COLOR, linewidth=1.8, linestyle="--",
                    label="forecast p50", gid="forecast-p50")  # fmt: skip
        if actual.any():
            ax.step(at[actual], value("remaining")[actual], where="post", color=LINE_COLOR, linewidth=1.8,
                    label="actual", gid="actual")  # fmt: skip
            ax.axvline(at[actual].max(), color="#999999", linewidth=0.8, linestyle=":")
        _date_axis(ax)
        _at_least(ax, at, pd.Timedelta(minutes=10))
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("titles remaining")
        ax.set_xlabel("UTC")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
        return _svg(fig, key)


# ---------------------------------------------------------------- the HTML page

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f4f6f9; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 24px 48px; }
header { border-bottom: 3px solid #3b6ea5; margin-bottom: 16px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.meta, .muted { color: #666; }
section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; padding: 12px 18px; margin: 14px 0; }
.nodata { font-size: 18px; color: #666; padding: 24px 0; }
.flag { border-color: #d9822b; border-left: 6px solid #d9822b; }
.flag h2 { color: #a8500a; margin: 6px 0; display: inline; }
summary { cursor: pointer; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 8px; }
.card { background: #f4f6f9; border-radius: 4px; padding: 6px 10px; }
.card b { display: block; font-size: 17px; }
.card span { color: #555; font-size: 12px; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
svg { max-width: 100%; height: auto; display: block; }
.vsm { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e6e9ee; text-align: right; white-space: nowrap; }
th { background: #f4f6f9; position: sticky; top: 0; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.over { color: #b3261e; font-weight: 600; }
.scroll { overflow-x: auto; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head><body><main>
<header>
  <h1>{{ title }}</h1>
  <p class="meta">Window: {% for k, v in window.items() %}{{ k }} {{ v }}{% if not loop.last %} · {% endif %}{% endfor %}
     · generated {{ generated_at }} · definitions: see docs/analytics.md</p>
</header>
{% if not streams %}<section><p class="nodata">No data yet: no value-stream run in this window.</p></section>{% endif %}

{% if anomalies %}
<section class="flag"><details{% if anomalies | length <= 10 %} open{% endif %}>
<summary><h2>{{ anomalies | length }} anomal{{ "y" if anomalies | length == 1 else "ies" }} today</h2></summary>
<p class="muted">Stages of today's titles slower than the 90th percentile of the same stream and stage over the last 30 days.</p>
<div class="scroll"><table>
<tr><th>stream</th><th class="text">stage</th><th class="text">asset</th><th class="text">run</th><th>cycle</th><th>cycle limit</th><th>wait</th><th>wait limit</th></tr>
{% for a in anomalies %}<tr><td>{{ a.stream }}</td><td class="text">{{ a.stage }}</td><td class="text">{{ a.asset_id or "–" }}</td>
<td class="text"><a href="{{ a.href }}">{{ a.run_id }}</a></td>
<td class="{{ 'over' if a.slow_cycle }}">{{ a.cycle_s | dur }}</td><td>{{ a.cycle_limit_s | dur }}</td>
<td class="{{ 'over' if a.slow_wait }}">{{ a.wait_s | dur }}</td><td>{{ a.wait_limit_s | dur }}</td></tr>
{% endfor %}</table></div></details></section>
{% elif streams %}<section><p class="muted">No anomalies today.</p></section>{% endif %}

{% if batch %}
<h2>Batch forecast</h2>
<section class="burndown"><p>{{ batch }}</p>{{ burndown }}</section>
{% endif %}

{% for s in streams %}
<h2>{{ s.name }}</h2>
<section><h3>Scorecard</h3><div class="cards">
{% for label, value in s.cards %}<div class="card"><b>{{ value }}</b><span>{{ label }}</span></div>{% endfor %}
</div></section>
<section class="vsm">{{ s.vsm }}</section>
<section><div class="charts">{% for svg in s.charts %}<div>{{ svg }}</div>{% endfor %}</div></section>
{% endfor %}

<h2>Stages</h2>
<section>{% if stage_rows %}<div class="scroll"><table>
<tr>{% for h in stage_headings %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in stage_rows %}<tr>{% for v, text in row %}<td{% if text %} class="text"{% endif %}>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table></div>{% else %}<p class="nodata">{{ no_data }}</p>{% endif %}</section>

<h2>Latest titles</h2>
<section>{% if titles %}<div class="scroll"><table>
<tr><th>asset</th><th class="text">stream</th><th class="text">status</th><th class="text">queued</th><th>lead time</th><th>flow efficiency</th><th class="text">run</th></tr>
{% for t in titles %}<tr><td>{{ t.asset_id or "–" }}</td><td class="text">{{ t.stream }}</td><td class="text">{{ t.status }}</td>
<td class="text">{{ t.queued_at | minute }}</td><td>{{ t.lead_time_s | dur }}</td><td>{{ t.flow_efficiency | ratio }}</td>
<td class="text"><a href="{{ t.href }}">{{ t.run_id }}</a></td></tr>
{% endfor %}</table></div>{% else %}<p class="nodata">{{ no_data }}</p>{% endif %}</section>
</main></body></html>
"""

_DIGEST = """<html><body style="font-family: sans-serif; font-size: 14px; color: #222">
<h2 style="margin-bottom: 4px">Value streams on {{ day }}</h2>
{% if lines %}<ul>{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>
{% else %}<p>No data yet.</p>{% endif %}
<h3>Anomalies ({{ anomalies | length }})</h3>
{% if anomalies %}<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">stream</th><th align="left">stage</th><th align="left">asset</th><th align="left">run</th><th align="right">cycle / limit</th><th align="right">wait / limit</th></tr>
{% for a in anomalies %}<tr><td>{{ a.stream }}</td><td>{{ a.stage }}</td><td>{{ a.asset_id or "–" }}</td><td>{{ a.run_id }}</td>
<td align="right"{% if a.slow_cycle %} style="color: #b3261e; font-weight: bold"{% endif %}>{{ a.cycle_s | dur }} / {{ a.cycle_limit_s | dur }}</td>
<td align="right"{% if a.slow_wait %} style="color: #b3261e; font-weight: bold"{% endif %}>{{ a.wait_s | dur }} / {{ a.wait_limit_s | dur }}</td></tr>
{% endfor %}</table>{% else %}<p>None.</p>{% endif %}
{% if recommendations %}<h3>Localization recommendations ({{ recommendations | length }})</h3>
<p>Titles watched in a territory by viewers of a locale they lack (audience feedback, docs/feedback.md):</p>
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">title</th><th align="left">territory</th><th align="left">locale</th><th align="right">starts</th><th align="left">action</th></tr>
{% for r in recommendations %}<tr><td>{{ r.asset_id }}</td><td>{{ r.territory }}</td><td>{{ r.locale }}</td><td align="right">{{ r.starts }}</td><td>{{ r.action }}</td></tr>
{% endfor %}</table>{% endif %}
{% if report_link %}<p><a href="{{ report_link }}">The full value-stream report</a></p>{% endif %}
</body></html>
"""

_ENV = Environment(autoescape=True)
_ENV.filters.update(dur=human_duration, ratio=_ratio, pct=_pct, minute=_minute)
_PAGE_TEMPLATE, _DIGEST_TEMPLATE = _ENV.from_string(_PAGE), _ENV.from_string(_DIGEST)


def _scorecard(s: dict) -> list[tuple[str, str]]:
    return [
        ("titles", _num(s.get("titles"))), ("finished", _num(s.get("finished"))),
        ("in progress", _num(s.get("in_progress"))), ("lead time median", human_duration(s.get("lead_time_median_s"))),
        ("lead time p90", human_duration(s.get("lead_time_p90_s"))), ("flow efficiency (median)", _ratio(s.get("flow_efficiency_median"))),
        ("throughput / day", _num(s.get("throughput_per_day"))), ("WIP now", _num(s.get("wip"))),
        ("bottleneck stage", s.get("bottleneck") or "–"), ("bottleneck share of the time", _pct(s.get("bottleneck_share_pct"))),
        ("bottleneck wait (median)", human_duration(s.get("bottleneck_wait_s"))),
        ("bottleneck active (median)", human_duration(s.get("bottleneck_active_s"))),
        ("published", _pct(s.get("published_pct"))), ("rejected", _pct(s.get("rejected_pct"))),
        ("failed", _pct(s.get("failed_pct"))), ("review rejection", _pct(s.get("review_rejection_pct"))),
        ("QC findings / title", _num(s.get("qc_findings_per_title"))), ("locale rejection", _pct(s.get("locale_rejection_pct"))),
        ("lowest rung VMAF (median)", _num(s.get("lowest_rung_vmaf_median"))),
    ]  # fmt: skip


def _linked(rows: list[dict]) -> list[dict]:
    """Rows with the relative link to their run in the Airflow UI: the page's only links."""
    return [{**r, "href": run_url("", r["dag_id"], r["run_id"])} for r in rows]


def _anomalies(tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Today's anomalies with the asset of their run."""
    runs = _table(tables, "runs")
    assets = {} if runs.empty or "asset_id" not in runs else {
        (d, r): a for d, r, a in runs[["dag_id", "run_id", "asset_id"]].itertuples(index=False)}  # fmt: skip
    return [
        {**a, "asset_id": assets.get((a["dag_id"], a["run_id"]))} for a in metrics.records(_table(tables, "anomalies"))
    ]


def render_html(tables: dict[str, pd.DataFrame], *, title: str = "Value stream report", generated_at: str,
                window: dict) -> str:  # fmt: skip
    """The whole report as one self-contained HTML page: header, today's anomalies (on top when there are any),
    the batch forecast (its burn-down) when the tables hold one, per stream a scorecard, its value stream map and
    charts, the stage table and the latest titles."""
    by_stream = {r["stream"]: r for r in metrics.records(_table(tables, "streams"))}
    streams = [{"name": name, "cards": _scorecard(by_stream.get(name, {})), "vsm": Markup(vsm_svg(tables, name)),
                "charts": [Markup(chart(tables, name)) for chart in CHARTS]} for name in stream_names(tables)]  # fmt: skip
    stages = _table(tables, "stages")
    latest = metrics.records(_table(tables, "runs").head(LATEST_TITLES))
    for t in latest:
        t["status"] = t.get("status") or t.get("state") or "–"
    return _PAGE_TEMPLATE.render(
        title=title, css=Markup(_CSS), generated_at=generated_at, window=window, streams=streams, no_data=NO_DATA,
        anomalies=_linked(_anomalies(tables)),
        stage_headings=[_heading(c) for c in stages.columns],
        stage_rows=[[(_cell(c, v), isinstance(v, str)) for c, v in r.items()] for r in metrics.records(stages)],
        titles=_linked(latest),
        batch=outlook.summary_line(batch_summary(tables)) if "burndown" in tables else None,
        burndown=Markup(burndown_svg(tables)) if "burndown" in tables else None,
    )  # fmt: skip


# ---------------------------------------------------------------- data files


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as one Arrow type each: ints with None (the outcome counts) -> Int64, floats -> Float64,
    bools -> boolean, timestamps -> UTC, anything else -> string. A column without a value keeps Arrow's null type
    rather than a guessed one."""
    out = frame.copy()
    for c in out.columns[out.dtypes == object]:  # noqa: E721 (an element-wise pandas dtype mask, not a type test)
        kind = pd.api.types.infer_dtype(out[c], skipna=True)
        if kind == "empty":
            continue
        if kind == "integer":
            out[c] = out[c].astype("Int64")
        elif kind in ("floating", "mixed-integer-float", "decimal"):
            out[c] = pd.to_numeric(out[c]).astype("Float64")
        elif kind == "boolean":
            out[c] = out[c].astype("boolean")
        elif kind in ("datetime", "datetime64"):
            out[c] = pd.to_datetime(out[c], utc=True)
        else:
            out[c] = out[c].map(lambda v: None if v is None or v != v else str(v)).astype("string")
    return out


def write_parquet(tables: dict[str, pd.DataFrame], folder: str | Path) -> dict[str, Path]:
    """One Parquet file per table, `<folder>/<name>.parquet`; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        paths[name] = folder / f"{name}.parquet"
        _arrow_safe(frame).to_parquet(paths[name], index=False)
    return paths


# ---------------------------------------------------------------- the daily digest


def _day_line(stream: str, runs: pd.DataFrame, spans: pd.DataFrame) -> str:
    """One stream's day: titles finished, their lead time and flow efficiency, the stage SLAs of the spans that
    ended that day, and the day's bottleneck."""
    finished = len(runs)
    parts = [f"{stream}: {finished} finished"]
    if finished:
        parts.append(f"lead time {human_duration(runs['lead_time_s'].median())} (median)")
        parts.append(f"flow efficiency {_ratio(runs['flow_efficiency'].median())}")
    judged = spans[spans["sla_s"].notna()] if "sla_s" in spans else spans.iloc[0:0]
    if not judged.empty:
        missed = int(judged["sla_missed"].sum())
        parts.append(f"SLA {missed} of {len(judged)} stages missed ({_pct(100 * (1 - missed / len(judged)))} met)")
    if not spans.empty:
        top = metrics.bottleneck(metrics.stage_summary(spans, {})).iloc[0]
        parts.append(f"bottleneck {top['stage']} (wait {human_duration(top['wait_median_s'])} + active "
                     f"{human_duration(top['active_median_s'])}, {_pct(top['share_pct'])} of the time)")  # fmt: skip
    return " · ".join(parts)


def digest_mail(tables: dict[str, pd.DataFrame], *, owners: list[str], day: str, report_link: str | None,
                recommendations: list[dict] | None = None) -> dict:  # fmt: skip
    """The value-stream owners' digest of `day` (UTC, YYYY-MM-DD): per stream one line (titles finished that day,
    their median lead time and flow efficiency, stage SLA misses, the day's bottleneck; then one line of the
    batch forecast when the tables hold one), the anomalies of the
    tables (compute() judges its own "today"), the audience feedback's localization recommendations (the first
    20) and the report link. Returns {"to", "subject", "html"}."""
    runs, spans = _table(tables, "runs"), _table(tables, "spans")
    d0 = pd.Timestamp(day, tz="UTC")

    def on_day(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        if frame.empty or column not in frame:
            return frame.iloc[0:0]
        at = pd.to_datetime(frame[column], utc=True)
        return frame[(at >= d0) & (at < d0 + pd.Timedelta(days=1))]

    done_runs, done_spans = on_day(runs, "finished_at"), on_day(spans, "ended_at")
    lines = [_day_line(s, _of(done_runs, s), _of(done_spans, s)) for s in stream_names(tables)]
    if "batch_forecast" in tables:
        lines.append(outlook.summary_line(batch_summary(tables)))
    anomalies = _anomalies(tables)
    subject = f"[mediaflow] value streams digest {day}: {len(done_runs)} finished, {len(anomalies)} anomalies"
    html = _DIGEST_TEMPLATE.render(day=day, lines=lines, anomalies=anomalies, report_link=report_link,
                                   recommendations=(recommendations or [])[:20])  # fmt: skip
    return {"to": list(owners), "subject": subject, "html": html}
