"""The audience feedback loop: viewing events -> figures per title and territory, retention curves, demand for
missing locales, poster A/B tests, and a priorities table the nightly batch orders its work by.
Plain Python and pandas (vectorised), no Airflow imports. Definitions of every figure: docs/feedback.md.

  stats.py      the statistics: pure functions over pandas frames (sessions, figures, retention, demand,
                recommendations, A/B tests, priorities, `compute`)
  io.py         reading and validating event drops, loading events, writing and reading the figures via the Store
  render.py     the HTML report and its SVG retention charts
  synthetic.py  synthetic viewing events for `make run` and the tests

This module re-exports the names the DAGs, the dashboard, the batch, the tooling and the tests use. A test that
patches a function patches it where it is used (e.g. `mediaflow.feedback.io.report_html`), not here.

Events (CSV or Parquet drops): one row per player event.
  title       the title's asset id (as in the manifest, e.g. "bbb-s01e02")
  territory   ISO 3166-1 alpha-2 of the viewer ("US")
  locale      the viewer's language preference, BCP 47 ("es-ES")
  session     one viewing session of one title (a catalog page view, then perhaps a play)
  position_s  player position in seconds when the event happened (>= 0)
  event       impression (the title's poster was shown) | play | pause | seek | stop
  timestamp   ISO 8601 instant
  poster      optional: the poster variant shown (A/B tests); set on impression rows
"""

from __future__ import annotations

from mediaflow.feedback.io import (
    DROPS,
    FEEDBACK,
    catalog_for,
    ingest_drop,
    latest_key,
    load_events,
    pending_drops,
    publish,
    read_latest,
    read_priorities,
    read_recommendations,
    validate_events,
)
from mediaflow.feedback.render import report_html, retention_svg
from mediaflow.feedback.stats import (
    COLUMNS,
    EVENTS,
    ab_decisions,
    catalog_entry,
    compute,
    locale_demand,
    p_text,
    poster_variants,
    priorities,
    recommendations,
    retention,
    score_of,
    sessions,
    title_figures,
    title_retention,
    two_proportion_p,
    wilson,
)
from mediaflow.feedback.synthetic import demo_titles, synthetic_events

__all__ = [
    "COLUMNS",
    "DROPS",
    "EVENTS",
    "FEEDBACK",
    "ab_decisions",
    "catalog_entry",
    "catalog_for",
    "compute",
    "demo_titles",
    "ingest_drop",
    "latest_key",
    "load_events",
    "locale_demand",
    "p_text",
    "pending_drops",
    "poster_variants",
    "priorities",
    "publish",
    "read_latest",
    "read_priorities",
    "read_recommendations",
    "recommendations",
    "report_html",
    "retention",
    "retention_svg",
    "score_of",
    "sessions",
    "synthetic_events",
    "title_figures",
    "title_retention",
    "two_proportion_p",
    "validate_events",
    "wilson",
]
