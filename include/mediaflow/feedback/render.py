"""The audience feedback report: an inline-SVG retention chart per title and the HTML page (figures,
localization recommendations, poster A/B decisions), rendered with Jinja2 (autoescaped)."""

from __future__ import annotations

import pandas as pd

from mediaflow.feedback.stats import title_retention

# tick spacings of the time axis, in seconds: the smallest that leaves at most MAX_TICKS intervals is used
TICK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600)
MAX_TICKS = 6


def clock(seconds: float, *, hours: bool = False, tenths: bool = False) -> str:
    """A position as a player shows it: "0:06", "12:30", with `hours` "1:05:00", with `tenths` "0:00.5"."""
    tenth = round(float(seconds) * 10)
    whole, frac = divmod(tenth, 10)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    text = f"{h}:{m:02d}:{sec:02d}" if hours else f"{h * 60 + m}:{sec:02d}"
    return f"{text}.{frac}" if tenths else text


def time_ticks(span_s: float) -> list[tuple[float, str]]:
    """(position s, label) of the time axis of a title `span_s` long: 0 and every step up to the span, the step
    from TICK_STEPS_S (whole seconds from a 2-s title up, tenths below), labels m:ss (h:mm:ss from an hour on)."""
    span = max(float(span_s), 0.0)
    if span == 0:
        return [(0.0, "0:00")]
    fits = [s for s in TICK_STEPS_S if span / s <= MAX_TICKS and (s >= 1 or span < 2)]
    step = fits[0] if fits else TICK_STEPS_S[-1]
    hours, tenths = span >= 3600, step < 1
    count = int(span / step + 1e-9)
    return [(k * step, clock(k * step, hours=hours, tenths=tenths)) for k in range(count + 1)]


def retention_svg(points: pd.DataFrame, *, width: int = 460, height: int = 170) -> str:
    """A line chart (inline SVG) of one title's retention curve (stats.title_retention rows of one title): x = the
    position in the title on a time axis from 0 to its span (ticks labelled m:ss, h:mm:ss for a title of an hour or
    more), y = the share of starts still watching, 0..100 %. One point alone (a curve from before the points were
    relative to the duration) is drawn as a dot."""
    left, right, top, bottom = 40, 28, 8, 38  # room for the labels: "100%" left, half of "2:00:00" right
    span = float(points["span_s"].max()) if "span_s" in points else float(points["bucket_start_s"].max())
    x_max, plot_w, plot_h = (span if span > 0 else 1.0), width - left - right, height - top - bottom
    xs = left + (points["bucket_start_s"].astype("float64") / x_max) * plot_w
    ys = top + (1 - points["retention"].astype("float64")) * plot_h
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=False))
    base = top + plot_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="retention" data-span-s="{span:g}">',
             f"<title>Share of starts still watching, over {clock(span, hours=span >= 3600)}</title>"]  # fmt: skip
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):  # gridlines, labelled at 0, 50 and 100 %
        y = top + (1 - share) * plot_h
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>')
        if share in (0.0, 0.5, 1.0):
            parts.append(f'<text x="{left - 4}" y="{y + 3.5:.1f}" font-size="10" text-anchor="end">{share:.0%}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#bbb"/>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#bbb"/>')
    ticks = time_ticks(span)
    for pos, label in ticks:
        x = left + pos / x_max * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#bbb"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{base + 15}" font-size="10" text-anchor="middle">{label}</text>'
        )
    unit = "h:mm:ss" if span >= 3600 else "m:ss"
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="10" text-anchor="middle" '
                 f'fill="#666">position in the title ({unit})</text>')  # fmt: skip
    parts.append(f'<polyline fill="none" stroke="#1f6fb2" stroke-width="2" points="{line}"/>')
    if len(points) == 1:  # a line of no length would show nothing
        parts.append(f'<circle cx="{xs.iloc[0]:.1f}" cy="{ys.iloc[0]:.1f}" r="3" fill="#1f6fb2"/>')
    return "".join(parts) + "</svg>"


_REPORT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audience feedback</title>
<style>body{font:14px sans-serif;color:#222;margin:20px}table{border-collapse:collapse}td,th{padding:3px 8px;
border-bottom:1px solid #eee;text-align:left}.n{text-align:right}.chart{display:inline-block;margin:0 18px 14px 0}</style>
</head><body><h1>Audience feedback</h1><p>Generated {{ generated_at }}. Definitions: docs/feedback.md.</p>
<h2>Retention</h2><p>Share of starts still watching at each point of the title, in 2 % steps of its duration.</p>
{% for c in charts %}<div class="chart"><b>{{ c.title }}</b> ({{ c.starts }} starts, {{ c.duration }})<br>{{ c.svg | safe }}</div>
{% else %}<p>No viewing events yet.</p>{% endfor %}
<h2>Per title and territory</h2><table><tr><th>title</th><th>territory</th><th class="n">starts</th>
<th class="n">completion</th><th class="n">watch share</th></tr>{% for r in figures %}<tr><td>{{ r.title }}</td>
<td>{{ r.territory }}</td><td class="n">{{ r.starts }}</td><td class="n">{{ r.completion_rate | pct }}</td>
<td class="n">{{ r.avg_watch_share | pct }}</td></tr>{% endfor %}</table>
<h2>Localization recommendations ({{ recommendations | length }})</h2>{% if recommendations %}<table><tr><th>title</th>
<th>territory</th><th>locale</th><th class="n">starts</th><th class="n">share</th><th>action</th></tr>
{% for r in recommendations %}<tr><td>{{ r.asset_id }}</td><td>{{ r.territory }}</td><td>{{ r.locale }}</td>
<td class="n">{{ r.starts }}</td><td class="n">{{ r.share | pct }}</td><td>{{ r.action }}</td></tr>{% endfor %}</table>
{% else %}<p>None: every watched title has its viewers' locales.</p>{% endif %}
<h2>Poster A/B tests</h2>{% if ab %}<table><tr><th>title</th><th>variant</th><th class="n">impressions</th>
<th class="n">click-through (95 % CI)</th><th>decision</th></tr>{% for title, d in ab.items() %}{% for v, s in d.variants.items() %}
<tr><td>{{ title }}</td><td>{{ v }}{% if d.winner == v %} <b>winner</b>{% endif %}</td><td class="n">{{ s.impressions }}</td>
<td class="n">{{ s.ctr | pct }} ({{ s.ci95[0] | pct }}–{{ s.ci95[1] | pct }})</td><td>{{ d.reason if loop.first else "" }}</td></tr>
{% endfor %}{% endfor %}</table>{% else %}<p>No poster tests running.</p>{% endif %}
</body></html>"""


def report_html(result: dict, *, generated_at: str) -> str:
    """The feedback report: a retention chart per title, the figures, recommendations and A/B decisions."""
    from jinja2 import Environment

    env = Environment(autoescape=True)
    env.filters["pct"] = lambda v: "–" if v is None or pd.isna(v) else f"{100 * float(v):.1f} %"
    per = title_retention(result["retention"])
    charts = [
        {
            "title": t,
            "starts": int(g["starts"].iloc[0]),
            "svg": retention_svg(g),
            "duration": clock(g["span_s"].max(), hours=g["span_s"].max() >= 3600),
        }
        for t, g in per.groupby("title", sort=True)
    ]
    return env.from_string(_REPORT).render(generated_at=generated_at, charts=charts,
                                           figures=result["figures"].to_dict("records"),
                                           recommendations=result["recommendations"], ab=result["ab"])  # fmt: skip
