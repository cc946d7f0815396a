"""The audience feedback loop: viewing events -> figures per title and territory, retention curves, demand for
missing locales, poster A/B tests, and a priorities table the nightly batch orders its work by.
Plain Python and pandas (vectorised), no Airflow imports. Definitions of every figure: docs/feedback.md.

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

import math
import re
from statistics import NormalDist

import numpy as np
import pandas as pd

EVENTS = ("impression", "play", "pause", "seek", "stop")
COLUMNS = ("title", "territory", "locale", "session", "position_s", "event", "timestamp", "poster")
REQUIRED = COLUMNS[:-1]
BUCKET_S = 10.0  # retention buckets
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


def retention(sess: pd.DataFrame, *, bucket_s: float = BUCKET_S) -> pd.DataFrame:
    """Per (title, territory, bucket): the share of started sessions that reached the bucket's start
    (bucket b covers [b * bucket_s, (b + 1) * bucket_s)); bucket 0 is 1.0. drop_off is the share lost in the
    bucket (the difference to the next bucket): where viewers leave. Buckets span the title's duration (or the
    furthest position seen when the duration is unknown)."""
    started = sess[sess["started"]].copy()
    if started.empty:
        return pd.DataFrame(
            columns=["title", "territory", "bucket", "bucket_start_s", "viewers", "retention", "drop_off"]
        )
    span = started["duration_s"].fillna(started.groupby("title")["furthest_s"].transform("max"))
    n_buckets = np.maximum(1, np.ceil(span / bucket_s)).astype("int64")
    reach = np.minimum(np.floor(started["furthest_s"].clip(upper=span) / bucket_s).astype("int64"), n_buckets - 1)
    started = started.assign(_reach=reach, _n=n_buckets)
    counts = started.groupby(["title", "territory", "_reach"]).size().rename("n").reset_index()
    sizes = (
        started.groupby(["title", "territory"]).agg(starts=("session", "size"), n_buckets=("_n", "max")).reset_index()
    )
    grid = sizes.loc[sizes.index.repeat(sizes["n_buckets"])].copy()
    grid["bucket"] = grid.groupby(["title", "territory"]).cumcount()
    grid = grid.merge(counts.rename(columns={"_reach": "bucket"}), on=["title", "territory", "bucket"], how="left")
    grid["n"] = grid["n"].fillna(0).astype("int64")
    grid = grid.sort_values(["title", "territory", "bucket"], ascending=[True, True, False])
    grid["viewers"] = grid.groupby(["title", "territory"])["n"].cumsum()  # reached this bucket or a later one
    grid = grid.sort_values(["title", "territory", "bucket"]).reset_index(drop=True)
    grid["retention"] = grid["viewers"] / grid["starts"]
    nxt = grid.groupby(["title", "territory"])["retention"].shift(-1).fillna(0.0)
    grid["drop_off"] = grid["retention"] - nxt
    grid["bucket_start_s"] = grid["bucket"] * bucket_s
    return grid[["title", "territory", "bucket", "bucket_start_s", "viewers", "retention", "drop_off"]]


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


# ---------------------------------------------------------------- synthetic events
def synthetic_events(titles: list[dict], *, seed: int = 0, sessions_per_title: int = 300,
                     start: str = "2026-11-27T00:00:00Z") -> pd.DataFrame:  # fmt: skip
    """Realistic viewing events for the demo and tests, reproducible from `seed`. Each title is a dict:
    asset_id, duration_s, territories [..], locales [..] (viewer locales, drawn uniformly), and optionally
    intro_drop (share leaving in the first 10 s, default 0.15), drop_per_min (hazard afterwards, default 0.1),
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
        later = 10.0 + rng.exponential(1 / rate if rate > 0 else 1e12, n)
        furthest = np.minimum(duration, np.where(intro, rng.uniform(0, 10, n), later)).round(1)
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


# ---------------------------------------------------------------- ingest: validate, quarantine bad rows
SUITE_PATH = __import__("pathlib").Path(__file__).resolve().parents[2] / "gx" / "feedback" / "events.json"
DROPS = "viewing-events"  # landing bucket: CSV or Parquet drops of viewing events
FEEDBACK = "feedback"  # reports bucket: feedback/events/ (valid rows), feedback/ingested/ (markers), feedback/latest/


def read_events(data: bytes, name: str) -> pd.DataFrame:
    """A drop as strings (CSV) or as stored (Parquet); ValueError naming the file when it cannot be read at all."""
    import io

    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(io.BytesIO(data))
        if name.endswith(".csv"):
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types for a broken file
        raise ValueError(f"{name}: not readable as {name.rsplit('.', 1)[-1]}: {e}") from None
    raise ValueError(f"{name}: not a .csv or .parquet file")


def _as_text(col: pd.Series) -> pd.Series:
    return col.astype("object").where(col.notna(), None).map(lambda v: v if v is None else str(v))


def validate_events(raw: pd.DataFrame, *, suite_path=SUITE_PATH) -> dict:
    """{"valid": typed events (COLUMNS, timestamp as UTC instants), "bad": the raw rows that failed with a
    `reasons` column, "counts": {reason template: rows}, "rows": n, "suite": summary}. Every input row is in
    exactly one of valid and bad."""
    from mediaflow import gx_suite

    raw = raw.reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in raw.columns]
    checked = pd.DataFrame({c: _as_text(raw[c]) if c in raw.columns else pd.Series([None] * len(raw), dtype="object")
                            for c in COLUMNS if c != "position_s"})  # fmt: skip
    checked["position_s"] = pd.to_numeric(raw["position_s"], errors="coerce") if "position_s" in raw else float("nan")
    stamps = checked["timestamp"].where(checked["timestamp"].notna(), None)
    checked["timestamp_utc"] = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")
    checked["missing_columns"] = ", ".join(missing) or None
    summary = gx_suite.run(
        checked, suite_path=suite_path, asset_name="viewing_events", parameters={"events": list(EVENTS)}
    )
    reasons: dict[int, list[str]] = {}
    counts: dict[str, int] = {}
    for failure in summary["failed"]:
        if "error" in failure:
            raise RuntimeError(f"{suite_path}: {failure['expectation']} on {failure['column']}: {failure['error']}")
        template = failure["meta"].get("reason") or failure["description"]
        counts[template] = counts.get(template, 0) + len(failure["rows"])
        for i in failure["rows"]:
            value = checked.at[i, failure["column"]]
            try:
                reasons.setdefault(i, []).append(template.format(value=value))
            except (KeyError, IndexError, ValueError):
                reasons.setdefault(i, []).append(template)
    bad_index = sorted(reasons)
    bad = raw.loc[bad_index].assign(reasons=["; ".join(reasons[i]) for i in bad_index])
    valid = checked.drop(index=bad_index)
    valid = valid.assign(timestamp=valid["timestamp_utc"])[list(COLUMNS)].reset_index(drop=True)
    suite = {k: summary[k] for k in ("suite", "suite_version", "success", "evaluated", "successful")}
    return {"valid": valid, "bad": bad, "counts": counts, "rows": len(raw), "suite": suite}


def _stem(key: str) -> str:
    return key[len(DROPS) + 1 :].replace("/", "__")


def pending_drops(store, buckets) -> list[str]:
    """Event files in s3://<landing>/viewing-events/ not ingested yet (no marker in feedback/ingested/)."""
    drops = sorted(k for k in store.list(buckets.landing, f"{DROPS}/") if k.endswith((".csv", ".parquet")))
    done = set(store.list(buckets.reports, f"{FEEDBACK}/ingested/"))
    return [k for k in drops if f"{FEEDBACK}/ingested/{_stem(k)}.json" not in done]


def ingest_drop(store, buckets, key: str) -> dict:
    """Validate one drop: valid rows to s3://<reports>/feedback/events/<file>.parquet, bad rows with their
    reasons to s3://<quarantine>/viewing-events/<file>.rejected.csv plus counts per reason, then the marker
    (last: a retry redoes the same keys). An unreadable file goes to quarantine whole."""
    import json

    stem, marker = _stem(key), f"{FEEDBACK}/ingested/{_stem(key)}.json"
    record = {"key": key, "uri": f"s3://{buckets.landing}/{key}"}
    try:
        result = validate_events(read_events(store.get_bytes(buckets.landing, key), key))
    except ValueError as e:
        store.copy(buckets.landing, key, buckets.quarantine, f"{DROPS}/{stem}")
        record |= {"rows": None, "valid": 0, "quarantined": None, "counts": {str(e): 1}, "file_rejected": str(e)}
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, f"{DROPS}/{stem}.counts.json")
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.reports, marker)
        return record
    import io

    buf = io.BytesIO()
    result["valid"].to_parquet(buf, index=False)
    store.put_bytes(buf.getvalue(), buckets.reports, f"{FEEDBACK}/events/{stem}.parquet")
    record |= {"rows": result["rows"], "valid": len(result["valid"]), "quarantined": len(result["bad"]),
               "counts": result["counts"], "suite": result["suite"]}  # fmt: skip
    if len(result["bad"]):
        store.put_bytes(result["bad"].to_csv(index=False).encode(), buckets.quarantine, f"{DROPS}/{stem}.rejected.csv")
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, f"{DROPS}/{stem}.counts.json")
        record["quarantine_uri"] = f"s3://{buckets.quarantine}/{DROPS}/{stem}.rejected.csv"
    store.put_bytes(json.dumps(record, indent=2).encode(), buckets.reports, marker)
    return record


def load_events(store, buckets) -> pd.DataFrame:
    """Every validated event ingested so far."""
    import io

    keys = sorted(k for k in store.list(buckets.reports, f"{FEEDBACK}/events/") if k.endswith(".parquet"))
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(buckets.reports, k))) for k in keys]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))


def catalog_for(store, buckets, titles, *, original_locale: str | None = None) -> dict[str, dict]:
    """Duration and available locales of each title, from its published state (a title never published: unknown
    duration, only the original locale)."""
    from mediaflow.store import published_state

    return {
        title: catalog_entry(published_state(store, buckets, title), original_locale=original_locale)
        for title in sorted(set(titles))
    }


def latest_key(name: str) -> str:
    return f"{FEEDBACK}/latest/{name}"


def publish(store, buckets, result: dict, *, run: str, generated_at: str, ingested: list[dict] | None = None) -> dict:
    """Write the figures to s3://<reports>/feedback/runs/<run>/, then copy them to feedback/latest/ (priorities.json
    last: the batch reads it). Returns {name: latest uri}."""
    import io
    import json

    from mediaflow.store import run_key

    prefix = f"{FEEDBACK}/runs/{run_key(run)}/"
    names = []
    for name in ("figures", "retention", "demand", "variants"):
        buf = io.BytesIO()
        result[name].to_parquet(buf, index=False)
        store.put_bytes(buf.getvalue(), buckets.reports, prefix + f"{name}.parquet")
        names.append(f"{name}.parquet")
    docs = {
        "recommendations.json": {"generated_at": generated_at, "recommendations": result["recommendations"]},
        "ab.json": {
            "generated_at": generated_at,
            "run": run,
            "alpha": ALPHA,
            "min_impressions": MIN_IMPRESSIONS,
            "titles": result["ab"],
        },
        "ingested.json": {"generated_at": generated_at, "drops": ingested or []},
        "priorities.json": {"generated_at": generated_at, **result["priorities"]},
    }
    for name, doc in docs.items():
        store.put_bytes(json.dumps(doc, indent=2, default=str).encode(), buckets.reports, prefix + name)
        names.append(name)
    store.put_bytes(report_html(result, generated_at=generated_at).encode(), buckets.reports, prefix + "index.html")
    names.insert(0, "index.html")
    for name in names:
        store.copy(buckets.reports, prefix + name, buckets.reports, latest_key(name))
    return {name: f"s3://{buckets.reports}/{latest_key(name)}" for name in names}


def read_latest(store, buckets, name: str) -> dict | None:
    """feedback/latest/<name> (a JSON document), None when the feedback loop has not written it yet."""
    from mediaflow.store import read_json

    return read_json(store, buckets.reports, latest_key(name))


def read_priorities(store, buckets) -> dict | None:
    """The latest priorities table, None when the feedback loop has not run (the batch keeps its own order)."""
    return read_latest(store, buckets, "priorities.json")


# ---------------------------------------------------------------- the report: retention charts, recommendations, A/B
def title_retention(curve: pd.DataFrame) -> pd.DataFrame:
    """Retention per (title, bucket) over all territories: viewers who reached the bucket / the title's starts."""
    if curve.empty:
        return pd.DataFrame(columns=["title", "bucket_start_s", "retention", "starts"])
    per = curve.groupby(["title", "bucket_start_s"], as_index=False)["viewers"].sum()
    starts = curve[curve["bucket"] == 0].groupby("title")["viewers"].sum().rename("starts")
    per = per.merge(starts, on="title")
    return per.assign(retention=per["viewers"] / per["starts"])[["title", "bucket_start_s", "retention", "starts"]]


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


def read_recommendations(store, buckets) -> list[dict]:
    """The latest localization recommendations (empty before the feedback loop has run)."""
    return (read_latest(store, buckets, "recommendations.json") or {}).get("recommendations") or []


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
