"""Synthetic viewing events for the demo (`make run`) and the tests: reproducible from a seed, shaped like the
real drops (mediaflow.feedback's event schema). Definitions: docs/feedback.md, "Synthetic events"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mediaflow.feedback.stats import COLUMNS, series_of


def synthetic_events(titles: list[dict], *, seed: int = 0, sessions_per_title: int = 300,
                     start: str = "2026-11-27T00:00:00Z") -> pd.DataFrame:  # fmt: skip
    """Realistic viewing events for the demo and tests, reproducible from `seed`. Each title is a dict:
    asset_id, duration_s, territories [..], locales [..] (viewer locales, drawn uniformly), and optionally
    intro_drop (share leaving in the intro: the first 10 s, or the first tenth of a title under 100 s; default
    0.15), drop_per_min (hazard afterwards, default 0.1),
    posters {variant: click-through} (impressions with an A/B test; without it every session plays).
    Sessions: impression -> play at 0 -> a pause and a play half-way -> stop at the drop-off point."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    frames = []
    for i, spec in enumerate(titles):
        n, duration = sessions_per_title, float(spec["duration_s"])
        sid = np.array([f"{spec['asset_id']}-{i}-{k:06d}" for k in range(n)])
        territory = rng.choice(spec["territories"], n)
        locale = rng.choice(spec["locales"], n)
        begin = t0 + pd.to_timedelta(rng.uniform(0, 86400, n), unit="s")
        posters = spec.get("posters") or {}
        if posters:
            names = np.array(sorted(posters))
            shown = rng.choice(names, n)
            clicked = rng.random(n) < np.array([posters[p] for p in shown])
        else:
            shown, clicked = np.full(n, None, dtype=object), np.ones(n, dtype=bool)
        intro = rng.random(n) < spec.get("intro_drop", 0.15)
        rate = spec.get("drop_per_min", 0.1) / 60.0
        intro_s = min(10.0, duration / 10)  # a 6-s clip's viewers who leave early leave in its first 0.6 s
        later = intro_s + rng.exponential(1 / rate if rate > 0 else 1e12, n)
        furthest = np.minimum(duration, np.where(intro, rng.uniform(0, intro_s, n), later)).round(2)
        base = pd.DataFrame(
            {"title": spec["asset_id"], "territory": territory, "locale": locale, "session": sid, "poster": shown}
        )
        rows = []
        if posters:
            rows.append(base.assign(event="impression", position_s=0.0, timestamp=begin, poster=shown))
        played = base[clicked].assign(poster=None)
        b, f = begin[clicked], furthest[clicked]
        rows.append(played.assign(event="play", position_s=0.0, timestamp=b + pd.Timedelta(seconds=5)))
        half = (f / 2).round(1)
        rows.append(played.assign(event="pause", position_s=half, timestamp=b + pd.to_timedelta(5 + half, unit="s")))
        rows.append(played.assign(event="play", position_s=half, timestamp=b + pd.to_timedelta(35 + half, unit="s")))
        rows.append(played.assign(event="stop", position_s=f, timestamp=b + pd.to_timedelta(35 + f, unit="s")))
        frames += rows
    out = (
        pd.concat(frames, ignore_index=True).sort_values(["timestamp", "session"], kind="stable").reset_index(drop=True)
    )
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out[list(COLUMNS)]


def demo_titles(assets: list[dict], *, missing_locale: str = "pt-BR") -> list[dict]:
    """`make run`'s synthetic audience for the published titles of a summary (summary.json "assets"): each
    watched in its territories by viewers of its published locales and of `missing_locale` (so a localization
    recommendation shows), episodes held better than the rest, and a poster A/B test (candidates p1 and p2) on the first
    title with pictures."""
    titles, pictured = [], []
    for a in sorted((a for a in assets if a.get("status") == "published"), key=lambda a: a["asset_id"]):
        duration = (a.get("source") or {}).get("duration_s")
        if not duration:
            continue
        if (a.get("source") or {}).get("video"):
            pictured.append(a["asset_id"])
        territories = sorted({t for p in a.get("published") or [] for t in p.get("territories") or []}) or ["US"]
        locales = sorted(
            {"en-US", missing_locale} | {loc for loc, st in (a.get("locales") or {}).items() if st == "published"}
        )
        episode = series_of(a["asset_id"]) is not None or "episode" in (a.get("value_stream") or "")
        titles.append({"asset_id": a["asset_id"], "duration_s": float(duration), "territories": territories,
                       "locales": locales, "intro_drop": 0.05 if episode else 0.2,
                       "drop_per_min": 0.5 if episode else 3.0})  # fmt: skip
    # the poster test runs on the first title with pictures: transcode made its candidates p1..p3 (mediaflow.posters)
    if pictured:
        next(t for t in titles if t["asset_id"] == pictured[0])["posters"] = {"p1": 0.45, "p2": 0.7}
    return titles
