"""The audience feedback report: an inline-SVG retention chart per title and the HTML page (figures,
localization recommendations, poster A/B decisions), rendered with Jinja2 (autoescaped)."""

from __future__ import annotations

import pandas as pd

from mediaflow.feedback.stats import title_retention


def retention_svg(points: pd.DataFrame, *, width: int = 420, height: int = 140) -> str:
    """A small line chart (inline SVG) of one title's retention: x = position in the title, y = 0..100 %."""
    pad, x_max = 28, max(float(points["bucket_start_s"].max()), 1.0)
    xs = pad + (points["bucket_start_s"] / x_max) * (width - 2 * pad)
    ys = pad / 2 + (1 - points["retention"]) * (height - pad * 1.5)
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=False))
    half = pad / 2 + 0.5 * (height - pad * 1.5)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="retention">'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#bbb"/>'
            f'<line x1="{pad}" y1="{pad / 2}" x2="{pad}" y2="{height - pad}" stroke="#bbb"/>'
            f'<line x1="{pad}" y1="{half:.1f}" x2="{width - pad}" y2="{half:.1f}" stroke="#eee"/>'
            f'<text x="2" y="{pad / 2 + 4}" font-size="10">100%</text><text x="6" y="{half + 4:.1f}" font-size="10">50%</text>'
            f'<text x="{pad}" y="{height - 6}" font-size="10">0 s</text>'
            f'<text x="{width - pad - 30}" y="{height - 6}" font-size="10">{x_max:.0f} s</text>'
            f'<polyline fill="none" stroke="#1f6fb2" stroke-width="2" points="{line}"/>'
            # one bucket (a title under 10 s) is a line of no length: a dot shows it
            + (f'<circle cx="{xs.iloc[0]:.1f}" cy="{ys.iloc[0]:.1f}" r="3" fill="#1f6fb2"/>' if len(points) == 1 else "")
            + "</svg>")  # fmt: skip


_REPORT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audience feedback</title>
<style>body{font:14px sans-serif;color:#222;margin:20px}table{border-collapse:collapse}td,th{padding:3px 8px;
border-bottom:1px solid #eee;text-align:left}.n{text-align:right}.chart{display:inline-block;margin:0 18px 14px 0}</style>
</head><body><h1>Audience feedback</h1><p>Generated {{ generated_at }}. Definitions: docs/feedback.md.</p>
<h2>Retention</h2>{% for c in charts %}<div class="chart"><b>{{ c.title }}</b> ({{ c.starts }} starts)<br>{{ c.svg | safe }}</div>
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
        {"title": t, "starts": int(g["starts"].iloc[0]), "svg": retention_svg(g)}
        for t, g in per.groupby("title", sort=True)
    ]
    return env.from_string(_REPORT).render(generated_at=generated_at, charts=charts,
                                           figures=result["figures"].to_dict("records"),
                                           recommendations=result["recommendations"], ab=result["ab"])  # fmt: skip
