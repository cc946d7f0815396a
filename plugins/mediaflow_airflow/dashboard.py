"""The "Value Streams" dashboard: a FastAPI app the `mediaflow` plugin mounts on Airflow's API server at /mediaflow.

Every number comes from mediaflow.metrics over the stage ledger; this module only loads (cached ~15 s per window),
filters to the DAGs the user may read, and renders (Jinja2, autoescaped) or returns JSON. Every route needs an
Airflow login (a bearer token or the UI's `_token` cookie) but the UI's host module: Airflow's UI frames these pages
through the plugin's `react_apps` (static/value_streams.js), same origin. Links inside the app are relative to its
mount point (`request.scope["root_path"]`) and links to Airflow's pages to Airflow's root, so a base URL with a
path works; the pages follow Airflow's light/dark mode (templates/base.html).
Forecasts (mediaflow.forecast through mediaflow.outlook): each open title's ETA on its run page and in the JSON,
the batch burn-down and the what-if form on the Value Streams page; no script (the form is a plain GET).
The JSON endpoints are documented in docs/dashboard-api.md. The API server imports this module on the first
request (mediaflow_plugin mounts it lazily), so its imports never slow down other Airflow processes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import pandas as pd
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from mediaflow import capacity, forecast, metrics, outlook
from mediaflow.ledger import Ledger
from mediaflow.ledger import attempts as attempt_rows
from mediaflow.names import FEEDBACK_DAG, stream_of
from mediaflow.spec import load_specs
from mediaflow.stages import iso_z
from mediaflow_airflow.hooks import LedgerHook

TTL_S = 15.0  # a big ledger takes seconds to compute; dashboards and scripts poll
TITLES_ON_PAGE = 25

app = FastAPI(title="mediaflow value streams", docs_url=None, redoc_url=None, openapi_url=None)
User = Annotated[BaseUser, Depends(get_user)]
Days = Annotated[int, Query(ge=1, le=365, description="window: runs queued in the last `days` days")]
Stream = Annotated[str | None, Query(description="only this value stream")]

templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)  # fmt: skip


# ---------------------------------------------------------------- data: one cached computation per window


@dataclass(frozen=True)
class Window:
    days: int
    since: datetime
    until: datetime
    tables: dict  # name -> DataFrame, as metrics.compute returns them
    specs: dict  # stream name -> StreamSpec
    svgs: dict = field(default_factory=dict)  # stream -> its value stream map, drawn once per window

    def meta(self) -> dict:
        return {"days": self.days, "since": iso_z(self.since), "until": iso_z(self.until)}


_cache: dict[int, tuple[float, Window]] = {}
_cache_lock = threading.Lock()


def window(days: int) -> Window:
    """The metrics tables for runs queued in the last `days` days, recomputed at most every TTL_S seconds.
    One lock: concurrent requests wait for one computation instead of each starting their own."""
    with _cache_lock:
        hit = _cache.get(days)
        if hit and time.monotonic() - hit[0] < TTL_S:
            return hit[1]
        specs = load_specs()
        until = datetime.now(UTC)
        since = until - timedelta(days=days)
        tables = metrics.from_ledger(
            Ledger(LedgerHook().url()), metrics.slas_of(specs), since=since, until=until, now=until
        )
        win = Window(days, since, until, tables, specs)
        _cache[days] = (time.monotonic(), win)
        return win


@dataclass(frozen=True)
class Access:
    """What the user may read: DAG ids, and the value streams among them."""

    dag_ids: frozenset[str]
    streams: frozenset[str]

    def check_stream(self, stream: str | None) -> None:
        if stream is not None and stream not in self.streams:
            raise HTTPException(404, f"no value stream {stream!r} readable by you")

    def rows(self, frame, stream: str | None = None):
        """The rows of a metrics table the user may read (by dag_id when the table has one, else by stream)."""
        keep = frame["dag_id"].isin(self.dag_ids) if "dag_id" in frame else frame["stream"].isin(self.streams)
        if stream is not None:
            keep &= frame["stream"] == stream
        return frame[keep]


def access(user: User) -> Access:
    # get_auth_manager(): a mounted app has no request.app.state.auth_manager
    dag_ids = frozenset(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))
    return Access(dag_ids, frozenset(s for s in map(stream_of, dag_ids) if s))


Readable = Annotated[Access, Depends(access)]


# ---------------------------------------------------------------- forecasts: one cached computation per reader


@dataclass(frozen=True)
class Outlook:
    """The forecast's view for one set of readable DAGs: what the ledger's last outlook.HISTORY_DAYS days teach
    (`hist`), the machine's pools, the batch burn-down and every open title's ETA."""

    at: datetime
    hist: forecast.History
    slots: dict  # pool -> slots, the machine's capacity
    streams: list  # readable streams with enough history for a what-if
    burndown: pd.DataFrame
    summary: dict
    etas: list
    svg: dict = field(default_factory=dict)  # the burn-down chart, drawn once

    def meta(self) -> dict:
        return {"as_of": iso_z(self.at), "history_days": outlook.HISTORY_DAYS, "slots": self.slots}


_outlooks: dict[frozenset, tuple[float, Outlook]] = {}
_outlook_lock = threading.Lock()


def outlook_of(acc: Access) -> Outlook:
    """The forecasts over the DAGs the user may read (another stream's titles are not counted, shown or learnt
    from), recomputed at most every TTL_S seconds per set of readable DAGs."""
    with _outlook_lock:
        hit = _outlooks.get(acc.dag_ids)
        if hit and time.monotonic() - hit[0] < TTL_S:
            return hit[1]
        now = datetime.now(UTC)
        attempts, runs = Ledger(LedgerHook().url()).frames(outlook.history_since(now), now)
        mine = lambda frame: frame[frame["dag_id"].isin(acc.dag_ids)].reset_index(drop=True)  # noqa: E731
        attempts, runs = mine(attempts), mine(runs)
        hist = forecast.history(attempts, runs, now=now)
        slots = forecast.slots_of(capacity.capacity())
        titles = forecast.titles_now(attempts, runs, now=now)  # once for both (1.2 s on 200,000 ledger rows)
        rows, summary = outlook.burndown(hist, attempts, runs, slots=slots, now=now, titles=titles)
        streams = sorted(s for s in acc.streams if hist.runs_of(s) >= forecast.MIN_RUNS)
        etas = outlook.eta_rows(hist, attempts, runs, now=now, titles=titles)
        out = Outlook(now, hist, slots, streams, rows, summary, etas)
        for row in etas:
            row["eta"]["in_batch"] = in_batch(out, row)
        _outlooks[acc.dag_ids] = (time.monotonic(), out)
        return out


def burndown_chart(out: Outlook) -> str:
    if "svg" not in out.svg:
        from mediaflow.report import burndown_svg

        out.svg["svg"] = burndown_svg({"burndown": out.burndown})
    return out.svg["svg"]


def run_eta(acc: Access, attempts: pd.DataFrame, run: dict, *, now: datetime) -> dict | None:
    """The ETA of one run (Eta.to_json()), None once it has ended."""
    if not pd.isna(run.get("ended_at")):
        return None
    runs = pd.DataFrame([run])
    for col in [c for c in runs.columns if c.endswith("_at")]:
        runs[col] = pd.to_datetime(runs[col], utc=True)
    titles = forecast.titles_now(attempts, runs, now=now)
    if not titles:
        return None
    out = outlook_of(acc)
    return {**forecast.eta(out.hist, titles[0], now=now).to_json(), "in_batch": in_batch(out, run)}


def in_batch(out: Outlook, run: dict) -> dict | None:
    """A title's p50/p85 inside the batch forecast (with the other titles queueing for the same slots), if any."""
    return next((t for t in out.summary.get("per_title") or []
                 if (t["dag_id"], t["run_id"]) == (run["dag_id"], run["run_id"])), None)  # fmt: skip


WHATIF_FIELDS = ("review_answer_min", "titles")  # and slots.<pool>, arrivals.<stream>


def whatif_fields(values) -> dict:
    """The what-if fields among a form's or query's values (the page's own, days and stream, left out)."""
    return {k: v for k, v in values.items() if k in WHATIF_FIELDS or k.startswith(("slots.", "arrivals."))}


def whatif_answer(acc: Access, values: dict) -> dict:
    """forecast.whatif over the user's streams: base (the machine as it is) and changed (the fields' values).
    Raises outlook.WhatIfInvalid naming each bad field."""
    out = outlook_of(acc)
    base, changed = outlook.scenarios(values, slots=out.slots, streams=out.streams)
    if not out.streams:
        need = f"{forecast.MIN_RUNS} finished runs"
        raise outlook.WhatIfInvalid(
            [outlook.FieldError("history", f"too little history: no value stream you may read has {need}")]
        )
    try:
        answer = forecast.whatif(out.hist, base, changed)
    except ValueError as e:  # a scenario the model refuses: said as the input's fault, with its reason
        raise outlook.WhatIfInvalid([outlook.FieldError("scenario", str(e))]) from e
    return {**out.meta(), "scenarios": {"base": _scenario(base), "changed": _scenario(changed)}, **answer}


def _scenario(s: forecast.Scenario) -> dict:
    return {"slots": s.slots, "review_answer_s": s.review_answer_s, "arrivals": s.arrivals, "titles": s.titles}


def _invalid(exc: outlook.WhatIfInvalid) -> JSONResponse:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)


# ---------------------------------------------------------------- JSON


def _table(name: str, acc: Access, days: int, stream: str | None) -> dict:
    """One metrics table as JSON rows, the user's streams only, with the window it was computed for."""
    acc.check_stream(stream)
    win = window(days)
    return {"window": win.meta(), name: metrics.records(acc.rows(win.tables[name], stream))}


@app.get("/api/streams")
def api_streams(acc: Readable, days: Days = 30, stream: Stream = None) -> dict:
    return _table("streams", acc, days, stream)


@app.get("/api/stages")
def api_stages(acc: Readable, days: Days = 30, stream: Stream = None) -> dict:
    return _table("stages", acc, days, stream)


@app.get("/api/runs")
def api_runs(acc: Readable, days: Days = 30, stream: Stream = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:  # fmt: skip
    acc.check_stream(stream)
    win = window(days)
    runs = acc.rows(win.tables["runs"], stream)  # newest first
    return {"window": win.meta(), "total": len(runs), "limit": limit, "offset": offset,
            "runs": metrics.records(runs.iloc[offset : offset + limit])}  # fmt: skip


@app.get("/api/runs/{dag_id}/{run_id:path}")
def api_run(acc: Readable, dag_id: str, run_id: str) -> dict:
    return one_run(acc, dag_id, run_id)


@app.get("/api/forecast")
def api_forecast(acc: Readable) -> dict:
    """The batch forecast with its burn-down, and every open title's ETA (docs/dashboard-api.md)."""
    out = outlook_of(acc)
    return {**out.meta(), "batch": out.summary, "burndown": metrics.records(out.burndown), "etas": out.etas}


@app.get("/api/whatif", response_model=None)
def api_whatif(request: Request, acc: Readable) -> dict | JSONResponse:
    """What if: the fields as query parameters (slots.<pool>, review_answer_min, titles, arrivals.<stream>)."""
    try:
        return whatif_answer(acc, dict(request.query_params))
    except outlook.WhatIfInvalid as e:
        return _invalid(e)


@app.post("/api/whatif", response_model=None)
def api_whatif_post(acc: Readable, values: Annotated[dict, Body()]) -> dict | JSONResponse:
    """What if: the same fields as one JSON object."""
    try:
        return whatif_answer(acc, values)
    except outlook.WhatIfInvalid as e:
        return _invalid(e)


@app.get("/api/anomalies")
def api_anomalies(acc: Readable, days: Days = 30, stream: Stream = None) -> dict:
    return _table("anomalies", acc, days, stream)


@app.get("/api/vsm/{stream}")
def api_vsm(acc: Readable, stream: str, days: Days = 30) -> dict:
    acc.check_stream(stream)
    win = window(days)
    return {"window": win.meta(), "stream": stream, "boxes": metrics.value_stream_map(win.tables["stages"], stream)}


@app.get("/streams/{stream}/vsm.svg")
def vsm_svg(acc: Readable, stream: str, days: Days = 30) -> Response:
    acc.check_stream(stream)
    render = _vsm_renderer()
    if render is None:
        raise HTTPException(503, "the value stream map renderer (mediaflow.report.vsm_svg) is not installed")
    win = window(days)
    if stream not in win.svgs:
        svg = render(win.tables, stream)
        # drawn to be inlined in HTML (no namespace); as an image file of its own it needs one
        if "xmlns=" not in svg[: svg.index(">")]:
            svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
        win.svgs[stream] = svg
    cache = {"Cache-Control": f"private, max-age={int(TTL_S)}"}
    return Response(win.svgs[stream], media_type="image/svg+xml", headers=cache)


def _vsm_renderer():
    try:
        from mediaflow.report import vsm_svg as render
    except ImportError:
        return None
    return render


def one_run(acc: Access, dag_id: str, run_id: str) -> dict:
    """One title, computed live (not cached): its run row with lead time, its ETA while it is open (the forecast's
    history cached as outlook_of says), its stage spans with their SLA, and every ledger attempt."""
    if dag_id not in acc.dag_ids:
        raise HTTPException(403, f"you may not read DAG {dag_id!r}")
    ledger = Ledger(LedgerHook().url())
    run = ledger.run(dag_id, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} of {dag_id!r} in the stage ledger")
    now = datetime.now(UTC)
    frame = pd.DataFrame(ledger.attempts(dag_id, run_id), columns=attempt_rows.c.keys())
    # a window wide enough for this one run, whatever its age
    tables = metrics.compute(frame, pd.DataFrame([run]), metrics.slas_of(load_specs()),
                             since=datetime(1970, 1, 1, tzinfo=UTC), until=now + timedelta(seconds=1), now=now)  # fmt: skip
    row = (metrics.records(tables["runs"]) or [{}])[0]
    delivered = run["delivered_at"]
    return {"run": {**row, "delivered_at": iso_z(delivered) if delivered else None, "as_of": iso_z(now),
                    "warnings": run.get("warnings") or [], "renditions": run.get("renditions") or []},
            "eta": run_eta(acc, frame, run, now=now),
            "stages": metrics.records(tables["spans"].drop(columns=["dag_id", "run_id", "asset_id"])),
            "attempts": metrics.records(frame.drop(columns=["dag_id", "run_id", "stream"]))}  # fmt: skip


# ---------------------------------------------------------------- audience feedback (docs/feedback.md)


def _feedback(acc: Access):
    """(store, buckets) of the feedback tables; 404 unless the user may read the audience_feedback DAG."""
    if FEEDBACK_DAG not in acc.dag_ids:
        raise HTTPException(404, "no audience feedback readable by you")
    from mediaflow.store import Buckets
    from mediaflow_airflow.hooks import MediaStoreHook

    return MediaStoreHook(), Buckets.from_env()


@app.get("/api/feedback")
def api_feedback(acc: Readable) -> dict:
    """Localization recommendations and retention per title (all territories) from feedback/latest/."""
    import io

    from mediaflow import feedback

    store, buckets = _feedback(acc)
    key = feedback.latest_key("retention.parquet")
    curve = (pd.read_parquet(io.BytesIO(store.get_bytes(buckets.reports, key)))
             if key in store.list(buckets.reports, key) else pd.DataFrame(columns=["title", "bucket", "viewers"]))  # fmt: skip
    return {"recommendations": feedback.read_recommendations(store, buckets),
            "retention": metrics.records(feedback.title_retention(curve)),
            "default_posters": _default_posters()}  # fmt: skip


def _default_posters() -> list[dict]:
    """Each title's current A/B-chosen default poster (its latest change in the ledger), title order."""
    latest = {c["asset_id"]: c for c in Ledger(LedgerHook().url()).poster_changes()}
    return [{"asset_id": a, "variant": c["variant"], "previous": c["previous"], "channels": c["channels"],
             "p_value": c["p_value"], "decided_by": c["decided_by"], "changed_at": iso_z(c["changed_at"]),
             "run_id": c["run_id"]} for a, c in sorted(latest.items())]  # fmt: skip


@app.get("/feedback", response_class=HTMLResponse)
def feedback_page(request: Request, acc: Readable) -> HTMLResponse:
    """The feedback report (retention charts, recommendations, poster A/B) as audience_feedback last wrote it, in
    Airflow's colour mode like the other pages (templates/report_theme.html)."""
    from mediaflow import feedback

    store, buckets = _feedback(acc)
    key = feedback.latest_key("index.html")
    if key not in store.list(buckets.reports, key):
        return _page(request, "error.html", status="Audience feedback",
                     detail="No audience feedback yet: the audience_feedback DAG has not run.")  # fmt: skip
    page = store.get_bytes(buckets.reports, key).decode()
    page = page.replace("</head>", templates.get_template("report_theme.html").render() + "</head>", 1)
    posters = _default_posters()
    if posters:  # the A/B winners republished since: from the ledger, so the page is current between reports
        table = templates.get_template("default_posters.html").render(posters=posters, p_text=feedback.p_text)
        page = page.replace("</body>", table + "</body>")
    return HTMLResponse(page)


# ---------------------------------------------------------------- the UI's host component


HOST_JS = Path(__file__).parent / "static" / "value_streams.js"


@app.get("/static/value_streams.js", include_in_schema=False)
def host_js() -> Response:
    """The `react_apps` module that frames these pages in Airflow's UI (no login: code only, no data; the UI imports
    it as an ES module)."""
    return Response(HOST_JS.read_bytes(), media_type="text/javascript", headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------- HTML


@app.get("/", response_class=HTMLResponse)
def index(request: Request, acc: Readable, days: Days = 30, stream: Stream = None) -> HTMLResponse:
    acc.check_stream(stream)
    win = window(days)
    t = win.tables
    every = sorted(acc.streams & (set(win.specs) | set(t["streams"]["stream"])))
    names = [stream] if stream else every
    by = lambda frame: {s: metrics.records(acc.rows(frame, s)) for s in names}  # noqa: E731
    score = {r["stream"]: r for r in metrics.records(acc.rows(t["streams"], stream))}
    stages = by(t["stages"])
    runs = acc.rows(t["runs"], stream)
    assets = dict(zip(zip(runs["dag_id"], runs["run_id"], strict=False), runs["asset_id"], strict=False))
    shown = [s for s in names if s in score or stages[s]]
    return _page(request, "index.html", win=win, streams=shown, idle=[s for s in names if s not in shown],
                 all_streams=every, score=score, stages=stages,
                 anomalies=by(t["anomalies"]), assets=assets, runs=metrics.records(runs.head(TITLES_ON_PAGE)),
                 total_runs=len(runs), stream=stream, vsm=_vsm_renderer() is not None, choices=(1, 7, 30, 90, 365),
                 feedback=FEEDBACK_DAG in acc.dag_ids,
                 outlook=forecast_view(acc, request.query_params))  # fmt: skip


def forecast_view(acc: Access, query) -> dict:
    """The Value Streams page's batch forecast and what-if parts. The what-if runs when the form was sent (its
    hidden `whatif` field); its fields come back filled in, each error beside its field. A forecast that breaks
    is said on the page, and the rest of the page stands."""
    sent = whatif_fields(query) if "whatif" in query else None
    view = {"fields": sent or {}, "errors": {}, "answer": None, "error": None}
    try:
        out = outlook_of(acc)
        view.update(line=outlook.summary_line(out.summary), summary=out.summary, svg=Markup(burndown_chart(out)),
                    slots=out.slots, streams=out.streams, titles=outlook.WHATIF_TITLES,
                    history_days=outlook.HISTORY_DAYS)  # fmt: skip
        if sent is not None:
            view["answer"] = whatif_answer(acc, sent)
    except outlook.WhatIfInvalid as e:
        view["errors"] = {err.field: err.message for err in e.errors}
    except Exception as e:  # (the flow metrics above do not depend on it)
        view["error"] = f"{type(e).__name__}: {e}"
    return view


@app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
def run_page(request: Request, acc: Readable, dag_id: str, run_id: str) -> HTMLResponse:
    data = one_run(acc, dag_id, run_id)
    return _page(request, "run.html", dag_id=dag_id, run_id=run_id, data=data, timeline=timeline(data))


def timeline(data: dict) -> dict:
    """Bar geometry (percent of the run's time span) for the per-run page: per stage its hand-off wait, its span
    and one lane per task with that task's attempts."""
    ts = lambda v: pd.Timestamp(v) if v else None  # noqa: E731
    now = ts(data["run"]["as_of"])
    starts = [ts(a["started_at"]) for a in data["attempts"] if a["started_at"]]
    queued = ts(data["run"].get("queued_at"))
    t0 = min([t for t in [queued, *starts] if t is not None], default=now)
    ends = [ts(a["ended_at"]) or now for a in data["attempts"] if a["started_at"]]
    t1 = max([*ends, t0 + pd.Timedelta(seconds=1)])
    span_s = (t1 - t0).total_seconds()
    pos = lambda t: round(100 * (t - t0).total_seconds() / span_s, 3)  # noqa: E731
    rows = []
    for s in data["stages"]:
        start, end = ts(s["started_at"]), ts(s["ended_at"]) or now
        lanes: dict[str, list] = {}
        for a in data["attempts"]:
            if a["stage"] == s["stage"] and a["started_at"]:
                a_start, a_end = ts(a["started_at"]), ts(a["ended_at"]) or now
                lane = a["task_id"] + (f"[{a['map_index']}]" if a["map_index"] not in (None, -1) else "")
                lanes.setdefault(lane, []).append({**a, "left": pos(a_start), "width": max(pos(a_end) - pos(a_start), 0.3),
                                                   "seconds": (a_end - a_start).total_seconds()})  # fmt: skip
        wait_left = pos(start - pd.Timedelta(seconds=s["wait_s"] or 0))
        rows.append({**s, "left": pos(start), "width": max(pos(end) - pos(start), 0.3), "wait_left": wait_left,
                     "wait_width": pos(start) - wait_left, "lanes": lanes})  # fmt: skip
    ticks = [{"left": p, "seconds": span_s * p / 100} for p in (0, 25, 50, 75, 100)]
    return {"rows": rows, "ticks": ticks, "t0": iso_z(t0.to_pydatetime()), "span_s": span_s}


def _page(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    # links inside the app are relative to its mount point; links to Airflow's own pages to Airflow's root
    scope = request.scope
    html = templates.get_template(name).render(base=scope.get("root_path", ""), airflow=scope.get("app_root_path", ""),
                                                **context)  # fmt: skip
    return HTMLResponse(html, status_code=status_code)


@app.exception_handler(HTTPException)
def _error(request: Request, exc: HTTPException) -> Response:
    """A small page for the HTML routes (the dashboard is also opened on its own), JSON for the rest."""
    if request.scope.get("endpoint") in (index, run_page):
        return _page(request, "error.html", status_code=exc.status_code, status=exc.status_code, detail=exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


# ---------------------------------------------------------------- template helpers


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _duration(seconds) -> str:
    if not _number(seconds):
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"
    unit, sub = (60, 1) if s < 3600 else (3600, 60) if s < 86400 else (86400, 3600)
    rest = int(s % unit // sub)
    return f"{int(s // unit)}{_UNITS[unit]}" + (f" {rest:02d}{_UNITS[sub]}" if rest else "")


_UNITS = {1: "s", 60: "m", 3600: "h", 86400: "d"}


def _pct(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}%" if _number(value) else "–"


def _ratio(value) -> str:
    return _pct(100 * value) if _number(value) else "–"


def _num(value, digits: int = 2) -> str:
    if not _number(value):
        return "–"
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _when(iso) -> str:
    return iso[:19].replace("T", " ") if isinstance(iso, str) and iso else "–"


helpers = dict(duration=_duration, pct=_pct, ratio=_ratio, num=_num, when=_when)
templates.filters.update(helpers, q=lambda v: quote(str(v), safe=""))  # a path segment: run ids hold ':' and '+'
templates.globals.update(helpers, num0=lambda v: _num(v, 0))
