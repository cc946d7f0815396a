"""Audience feedback statistics: pure functions over pandas frames (vectorised), no I/O. Sessions, figures per
title and territory, retention curves, demand for missing locales, poster A/B tests (Wilson intervals, the
two-proportion z-test with Bonferroni), the priorities table, and `compute` (all of them at once). The event
schema: mediaflow.feedback; definitions of every figure: docs/feedback.md."""

from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np
import pandas as pd

EVENTS = ("impression", "play", "pause", "seek", "stop")
COLUMNS = ("title", "territory", "locale", "session", "position_s", "event", "timestamp", "poster")
REQUIRED = COLUMNS[:-1]
RETENTION_STEPS = 50  # a retention curve has 51 points, 2 % of the title apart
RETENTION_COLUMNS = ("title", "territory", "bucket", "bucket_start_s", "position", "span_s", "viewers", "retention",
                     "drop_off")  # fmt: skip
COMPLETE_AT = 0.95  # a session that reached 95 % of the title's duration completed it
ALPHA = 0.05  # significance level of the poster A/B test (two-sided)
MIN_IMPRESSIONS = 100  # per variant, before any A/B decision
MIN_STARTS = 20  # a title (or title x territory x locale) needs this many starts to be scored or recommended
SERIES_RE = re.compile(r"^(?P<series>.+?)[-_.]s(?P<season>\d{1,3})e(?P<episode>\d{1,4})$")


# ---------------------------------------------------------------- catalog
def series_of(asset_id: str) -> str | None:
    """ "bbb-s01e02" -> "bbb"; None for a title that is not an episode."""
    m = SERIES_RE.match(asset_id or "")
    return m.group("series") if m else None


def catalog_entry(state: dict | None, *, original_locale: str | None = None) -> dict:
    """What the figures need of a title from its published state (reports bucket `published/<asset_id>.json`):
    its duration, and the locales a viewer can watch it in (published captions and audio, plus the original)."""
    state = state or {}
    locales = {key.split(":", 1)[1] for key in (state.get("locales") or {}) if ":" in key}
    if original_locale:
        locales.add(original_locale)
    duration = (state.get("source") or {}).get("duration_s")
    return {"duration_s": float(duration) if duration else None, "locales": sorted(locales)}


def _durations(catalog: dict[str, dict]) -> pd.Series:
    return pd.Series({t: c.get("duration_s") for t, c in catalog.items()}, dtype="float64", name="duration_s")


# ---------------------------------------------------------------- sessions
def sessions(events: pd.DataFrame, catalog: dict[str, dict]) -> pd.DataFrame:
    """One row per (title, territory, locale, session): started (a play event), furthest_s (the furthest player
    position any of its events reported), duration_s, watch_share (furthest / duration, at most 1), completed
    (furthest >= 95 % of duration), poster (the variant shown, if any)."""
    keys = ["title", "territory", "locale", "session"]
    ev = events.assign(position_s=pd.to_numeric(events["position_s"], errors="coerce"))
    if "poster" not in ev:
        ev = ev.assign(poster=None)
    ev = ev.assign(_play=ev["event"].eq("play"), _pos=ev["position_s"].where(ev["event"].ne("impression")))
    grouped = ev.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(started=("_play", "any"), furthest_s=("_pos", "max"), poster=("poster", "first")).reset_index()
    out["furthest_s"] = out["furthest_s"].fillna(0.0)
    out["duration_s"] = out["title"].map(_durations(catalog))
    out["watch_share"] = (out["furthest_s"] / out["duration_s"]).clip(upper=1.0)
    out["completed"] = (out["furthest_s"] >= COMPLETE_AT * out["duration_s"]).where(out["duration_s"].notna())
    return out


def title_figures(sess: pd.DataFrame) -> pd.DataFrame:
    """Per (title, territory): starts (sessions with a play), completion_rate (completed / starts) and
    avg_watch_share (mean watch share of the started sessions); NaN when the title's duration is unknown."""
    started = sess[sess["started"]].assign(completed=lambda f: f["completed"].astype("float64"))
    out = started.groupby(["title", "territory"], sort=True).agg(
        starts=("session", "size"), completion_rate=("completed", "mean"), avg_watch_share=("watch_share", "mean")
    )
    return out.reset_index().astype({"starts": "int64"})


def retention(sess: pd.DataFrame, *, steps: int = RETENTION_STEPS) -> pd.DataFrame:
    """Per (title, territory): the retention curve at `steps` + 1 points spread evenly over the title, relative to
    its duration (2 % steps by default: 51 points, 0 %..100 %), so a 6-s clip and a 2-hour film get the same detail.
    Point b sits at position_s = b / steps * span_s, span_s being the title's duration (or, when it is unknown, the
    furthest position any started session of the title reached). Its retention is the share of started sessions
    whose furthest position reached it (viewers = how many); point 0 is 1.0. drop_off is its retention minus the
    next point's (the share that left between them; at the last point, those who watched to the end).
    Columns: title, territory, bucket (b), bucket_start_s (= position_s, the name the readers know), position
    (b / steps, 0..1), span_s, viewers, retention, drop_off."""
    started = sess[sess["started"]]
    if started.empty:
        return pd.DataFrame(columns=list(RETENTION_COLUMNS))
    span = started["duration_s"].fillna(started.groupby("title")["furthest_s"].transform("max")).to_numpy("float64")
    furthest = started["furthest_s"].to_numpy("float64")
    # the last point a session reached: floor(furthest / span * steps); the epsilon keeps furthest == span (or
    # exactly on a point) from rounding down to the point before; a zero span (nobody got past 0 s) reaches the end
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.floor(np.minimum(furthest, span) / span * steps + 1e-9)
    reach = np.where(span > 0, reach, steps).astype("int64")
    keys = started[["title", "territory"]].assign(_reach=reach, _span=span)
    counts = keys.groupby(["title", "territory", "_reach"], sort=False).size()
    sizes = keys.groupby(["title", "territory"], sort=True).agg(starts=("_reach", "size"), span_s=("_span", "max"))
    # every (title, territory) x every point, then reached-or-later = reverse cumulative sum of the counts
    grid = sizes.loc[sizes.index.repeat(steps + 1)].reset_index()
    grid["bucket"] = np.tile(np.arange(steps + 1, dtype="int64"), len(sizes))
    n = counts.reindex(pd.MultiIndex.from_frame(grid[["title", "territory", "bucket"]]), fill_value=0).to_numpy()
    viewers = n.reshape(len(sizes), steps + 1)[:, ::-1].cumsum(axis=1)[:, ::-1]
    grid["viewers"] = viewers.ravel().astype("int64")
    grid["retention"] = grid["viewers"] / grid["starts"]
    after = np.concatenate([viewers[:, 1:], np.zeros((len(sizes), 1), dtype=viewers.dtype)], axis=1).ravel()
    grid["drop_off"] = grid["retention"] - after / grid["starts"]
    grid["position"] = grid["bucket"] / steps
    grid["bucket_start_s"] = grid["position"] * grid["span_s"]
    return grid[list(RETENTION_COLUMNS)]


# ---------------------------------------------------------------- localization demand
def _lacking(sess: pd.DataFrame, catalog: dict[str, dict]) -> pd.DataFrame:
    started = sess[sess["started"]]
    have = {(t, loc) for t, c in catalog.items() for loc in c.get("locales") or []}
    pairs = pd.Series(list(zip(started["title"], started["locale"], strict=False)), index=started.index, dtype="object")
    return started[~pairs.isin(have)]


def locale_demand(sess: pd.DataFrame, catalog: dict[str, dict]) -> pd.DataFrame:
    """Per (territory, locale): starts of titles that have neither captions nor audio in the viewer's locale
    (nor is it the original), and how many titles those are. Highest demand first."""
    lacking = _lacking(sess, catalog)
    out = (
        lacking.groupby(["territory", "locale"])
        .agg(starts=("session", "size"), titles=("title", "nunique"))
        .reset_index()
    )
    return out.sort_values(["starts", "territory", "locale"], ascending=[False, True, True]).reset_index(drop=True)


def recommendations(sess: pd.DataFrame, catalog: dict[str, dict], *, min_starts: int = MIN_STARTS) -> list[dict]:
    """Titles watched in a territory by viewers of a locale the title lacks, at least `min_starts` starts:
    {asset_id, territory, locale, starts, share (of the title's starts in that territory), action}."""
    lacking = _lacking(sess, catalog)
    per = lacking.groupby(["title", "territory", "locale"]).size().rename("starts").reset_index()
    total = sess[sess["started"]].groupby(["title", "territory"]).size().rename("total").reset_index()
    per = per.merge(total, on=["title", "territory"])
    per = per[per["starts"] >= min_starts].sort_values(
        ["starts", "title", "territory", "locale"], ascending=[False, True, True, True]
    )
    return [{"asset_id": r.title, "territory": r.territory, "locale": r.locale, "starts": int(r.starts),
             "share": round(r.starts / r.total, 4), "action": f"add captions or audio in {r.locale}"}
            for r in per.itertuples()]  # fmt: skip


# ---------------------------------------------------------------- poster A/B tests
def wilson(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it is undefined)."""
    if not n1 or not n2:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return 2 * (1 - NormalDist().cdf(abs(z)))


def poster_variants(events: pd.DataFrame) -> pd.DataFrame:
    """Per (title, poster): impressions (sessions shown that poster), clicks (of those, sessions with a play),
    ctr and its 95 % Wilson interval."""
    if "poster" not in events:
        return pd.DataFrame(columns=["title", "poster", "impressions", "clicks", "ctr", "ctr_low", "ctr_high"])
    shown = events[events["event"].eq("impression") & events["poster"].notna()][
        ["title", "session", "poster"]
    ].drop_duplicates()
    played = events[events["event"].eq("play")][["title", "session"]].drop_duplicates().assign(clicked=True)
    shown = shown.merge(played, on=["title", "session"], how="left")
    shown["clicked"] = shown["clicked"].astype("boolean").fillna(False).astype(bool)
    out = (
        shown.groupby(["title", "poster"]).agg(impressions=("session", "size"), clicks=("clicked", "sum")).reset_index()
    )
    out = out.astype({"impressions": "int64", "clicks": "int64"})
    out["ctr"] = out["clicks"] / out["impressions"]
    bounds = [wilson(c, n) for c, n in zip(out["clicks"], out["impressions"], strict=False)]
    out["ctr_low"] = [b[0] for b in bounds]
    out["ctr_high"] = [b[1] for b in bounds]
    return out


def p_text(p: float) -> str:
    """A p-value as people read it: "p = 0.0123", or "p < 0.0001" (not an underflowed "p = 0")."""
    return f"p = {p:.3g}" if p >= 1e-4 else "p < 0.0001"


def ab_decisions(
    variants: pd.DataFrame, *, alpha: float = ALPHA, min_impressions: int = MIN_IMPRESSIONS
) -> dict[str, dict]:
    """Per title with two or more variants: the variant with the highest ctr is the winner only when every
    variant has at least `min_impressions` and its ctr beats each other variant's with a two-sided
    two-proportion z-test p < alpha / (variants - 1) (Bonferroni). Otherwise winner is None and reason says why."""
    out = {}
    for title, group in variants.groupby("title", sort=True):
        group = group.sort_values(["ctr", "poster"], ascending=[False, True])
        if len(group) < 2:
            continue
        best, rest = group.iloc[0], group.iloc[1:]
        threshold = alpha / len(rest)
        p = max(
            two_proportion_p(int(best.clicks), int(best.impressions), int(r.clicks), int(r.impressions))
            for r in rest.itertuples()
        )
        decision = {"best": best.poster, "p_value": p, "threshold": threshold, "winner": None,
                    "variants": {r.poster: {"impressions": int(r.impressions), "clicks": int(r.clicks), "ctr": r.ctr,
                                            "ci95": [r.ctr_low, r.ctr_high]} for r in group.itertuples()}}  # fmt: skip
        small = int(group["impressions"].min())
        if small < min_impressions:
            decision["reason"] = f"too few impressions ({small} < {min_impressions} for a variant)"
        elif p >= threshold:
            decision["reason"] = f"not significant ({p_text(p)} >= {threshold:.3g})"
        else:
            decision["winner"] = best.poster
            decision["reason"] = f"significant ({p_text(p)} < {threshold:.3g})"
        out[title] = decision
    return out


# ---------------------------------------------------------------- priorities for the nightly batch
def priorities(sess: pd.DataFrame, *, min_starts: int = MIN_STARTS) -> dict:
    """The table the nightly batch orders its work by: {"titles": {asset_id: score}, "series": {series: score}}.
    A title's score is its average watch share over all territories (0..1) once it has `min_starts` starts; a
    series' score is the start-weighted average watch share of its scored episodes, so the next episode of a
    series viewers watch to the end goes first."""
    started = sess[sess["started"] & sess["watch_share"].notna()]
    per = started.groupby("title").agg(starts=("session", "size"), share=("watch_share", "mean"))
    per = per[per["starts"] >= min_starts]
    titles = {t: round(float(s), 6) for t, s in per["share"].items()}
    per = per.assign(series=[series_of(t) for t in per.index], weighted=per["share"] * per["starts"])
    per = per[per["series"].notna()]
    by = per.groupby("series").agg(weighted=("weighted", "sum"), starts=("starts", "sum"))
    series = {s: round(float(r.weighted / r.starts), 6) for s, r in by.iterrows()}
    return {"titles": titles, "series": series, "min_starts": min_starts}


def score_of(table: dict | None, asset_id: str | None) -> float | None:
    """A delivery's feedback score: its title's own, else its series', else None (no feedback about it)."""
    if not table or not asset_id:
        return None
    if asset_id in (table.get("titles") or {}):
        return float(table["titles"][asset_id])
    series = series_of(asset_id)
    if series and series in (table.get("series") or {}):
        return float(table["series"][series])
    return None


# ---------------------------------------------------------------- everything at once
def compute(events: pd.DataFrame, catalog: dict[str, dict], *, min_starts: int = MIN_STARTS,
            alpha: float = ALPHA, min_impressions: int = MIN_IMPRESSIONS) -> dict:  # fmt: skip
    """All figures from validated events: {"figures", "retention", "demand", "variants"} DataFrames and
    {"recommendations", "priorities", "ab"} plain data."""
    sess = sessions(events, catalog)
    variants = poster_variants(events)
    return {
        "figures": title_figures(sess),
        "retention": retention(sess),
        "demand": locale_demand(sess, catalog),
        "variants": variants,
        "recommendations": recommendations(sess, catalog, min_starts=min_starts),
        "priorities": priorities(sess, min_starts=min_starts),
        "ab": ab_decisions(variants, alpha=alpha, min_impressions=min_impressions),
    }


# ---------------------------------------------------------------- retention over all territories (report, dashboard)
def title_retention(curve: pd.DataFrame) -> pd.DataFrame:
    """Retention per (title, point) over all territories: viewers who reached the point / the title's starts.
    Columns: title, bucket_start_s (the point's position in s), position (0..1 of span_s), span_s, retention, starts.
    A curve written before the points were relative to the duration (10-s buckets, no position/span_s) still reads:
    its span is its last bucket's start."""
    cols = ["title", "bucket_start_s", "position", "span_s", "retention", "starts"]
    if curve.empty:
        return pd.DataFrame(columns=cols)
    per = curve.groupby(["title", "bucket"], as_index=False, sort=True).agg(
        bucket_start_s=("bucket_start_s", "first"), viewers=("viewers", "sum")
    )
    per["starts"] = per.groupby("title")["viewers"].transform("first")  # point 0: every start reached it
    if "span_s" in curve:
        per = per.merge(curve.groupby("title")["span_s"].max(), on="title")
    else:
        per["span_s"] = per.groupby("title")["bucket_start_s"].transform("max")
    per["position"] = (per["bucket_start_s"] / per["span_s"]).where(per["span_s"] > 0, 0.0)
    return per.assign(retention=per["viewers"] / per["starts"])[cols]
