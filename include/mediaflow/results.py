"""What each stage hands on, typed: one dataclass per hand-off, one constructor each.

Ingest, transcode, localize, each compliance check, each review branch and the run's outcome (the summary.json
entry, v1) are dataclasses. Between Airflow tasks they still travel as JSON (XCom): `to_dict()` gives exactly the
dict the stage returned before these types existed (same keys, same order), `from_dict()` reads one back. Keys a
type does not name are kept in `extra` and written back, so an older or newer payload survives a round trip.

A field left `UNSET` is not written at all: some hand-offs carry a key only in some cases (a rejected ingest has
`quarantine_uri`, an accepted one does not; an entry for a run waiting for a person has no `reviews`). That is what
keeps summary.json byte for byte as it was (tests/unit/test_summary_contract.py).

No Airflow here: Airflow 3's XCom could serialise dataclasses itself, but wrapped (`__classname__`, `__data__`),
which would change every payload a running DAG run reads; so the boundary converts with to_dict/from_dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


class _Unset:
    """A field the producer did not set: left out of `to_dict()` (not the same as None, which is written)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def plain(value: Any) -> Any:
    """A result (or lists/dicts of them) as plain JSON-able data."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Result:
    """Base of every hand-off: to_dict()/from_dict() at the XCom boundary; `extra` keeps keys not named here."""

    NESTED: ClassVar[dict[str, type]] = {}  # field -> Result type of its items (a list) or of itself

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not UNSET:
                out[f.name] = plain(value)
        out.update(getattr(self, "extra", None) or {})
        return out

    @classmethod
    def from_dict(cls, data: dict | Result | None):
        if data is None or isinstance(data, cls):
            return data
        names = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        for k in names & set(data):
            value, typ = data[k], cls.NESTED.get(k)
            if typ is not None and isinstance(value, list):
                value = [typ.from_dict(v) if isinstance(v, dict) else v for v in value]
            elif typ is not None and isinstance(value, dict):
                value = typ.from_dict(value)
            kwargs[k] = value
        extra = {k: v for k, v in data.items() if k not in names}
        if extra and "extra" in {f.name for f in fields(cls)}:
            kwargs["extra"] = extra
        return cls(**kwargs)

    def get(self, name: str, default: Any = None) -> Any:
        """dict-style read (what the code that still handles the dict form does): UNSET reads as `default`."""
        value = getattr(self, name, UNSET)
        if value is UNSET:
            value = (getattr(self, "extra", None) or {}).get(name, UNSET)
        return default if value is UNSET else value


# ---------------------------------------------------------------- ingest, transcode, localize


@dataclass(frozen=True)
class Ingested(Result):
    """mediaflow.flow.ingest: `accepted` (the facts the next stages read) or `rejected` (reasons, quarantine).
    Every field may be UNSET: the two kinds carry different keys, and a round trip must not add any."""

    delivery: str | None = UNSET
    delivery_id: str | None = UNSET
    asset_id: str | None = UNSET
    value_stream: str | None = UNSET
    status: str = UNSET  # accepted | rejected
    mode: str = UNSET  # full | sidecars (accepted only)
    reasons: list[str] = UNSET
    warnings: list[str] = UNSET
    title: str | None = UNSET
    source_uri: str | None = UNSET
    source: dict | None = UNSET  # probe facts (media.inspect_source)
    previous: dict | None = UNSET  # what is live (sidecar-only deliveries)
    locales: list[dict] = UNSET  # the caption/audio work items
    locales_skipped: list[dict] = UNSET
    territories: list[str] = UNSET
    channels: list[str] = UNSET
    delivered_at: str | None = UNSET
    quarantine_uri: str | None = UNSET  # rejected only
    extra: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @property
    def sidecars_only(self) -> bool:
        return self.mode == "sidecars"


@dataclass(frozen=True)
class Transcoded(Result):
    """mediaflow.flow.transcode: the HLS ladder in the work bucket and what was encoded."""

    hls_uri: str
    files: list[str]
    variants: list[dict]
    audios: list[dict]
    fps: float
    posters: list[dict]
    loudness: dict | None = None
    renditions: list[dict] = UNSET  # each video rung's scores (mediaflow.quality.score_ladder); not for audio-only
    ladder: dict = UNSET  # content-aware ladders only: the probe's figures and each rung's choice (complexity.Fitted)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Localized(Result):
    """mediaflow.flow.localize_locale: one caption/audio locale's HLS rendition, or `rejected` with reasons."""

    kind: str
    locale: str
    file: str
    status: str = "rejected"  # ok | rejected
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hls_uri: str | None = None
    files: list[str] = field(default_factory=list)
    rendition: dict | None = None
    loudness: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def locale_status(self) -> str:
        """The locale as summary.json says it before publish: rejected with its reasons, or not (yet) published."""
        return "not published" if self.ok else "rejected: " + "; ".join(self.reasons)


# ---------------------------------------------------------------- compliance and review


@dataclass(frozen=True)
class CheckResult(Result):
    """One compliance check (mediaflow.compliance.check_*): passed, problems (each naming the check, the figure and
    the limit), and the check's own details (rights decisions, loudness per rendition, QC findings, GX result) kept
    in `extra` under their own keys."""

    check: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = UNSET  # technical_qc only
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Review(Result):
    """One review branch's decision: approved automatically (`by` auto), or a person's answer (or the timeout's)."""

    branch: str
    decision: str  # approved | rejected
    by: str
    comment: str = ""

    @property
    def rejected(self) -> bool:
        return self.decision == "rejected"


@dataclass(frozen=True)
class HumanAnswer(Result):
    """What ReviewApprovalOperator keeps of the HITL response (XCom `review` of `<branch>_approval`)."""

    chosen: str
    by: str = ""
    comment: str = ""


@dataclass(frozen=True)
class Published(Result):
    """mediaflow.flow.publish: the channels it went out on, each locale's status, reasons and warnings."""

    published: list[dict] = field(default_factory=list)
    locales: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    superseded_by: str | None = UNSET
    extra: dict = field(default_factory=dict)  # lease_wait_s (PublishOperator)


# ---------------------------------------------------------------- the outcome: one summary.json entry (v1)

STATUSES = ("published", "awaiting_review", "rejected", "failed")


@dataclass(frozen=True)
class SummaryEntry(Result):
    """One asset of out/summary.json (v1; README "summary.json (v1)"), whoever builds it: the run's `outcome` task,
    or the runner for a run parked on a review, a run that recorded no outcome, a delivery the batch refused.

    Fields in the v1 order. A field left UNSET is not written; the runner adds `stages` (when UNSET) and `alerts`
    from the ledger afterwards with `with_ledger`, which is why they come last in those entries."""

    asset_id: str | None
    delivery_id: str | None
    value_stream: str | None
    status: str
    reasons: list[str]
    dag_run_id: str | None
    lead_time_s: float | None = None
    source: dict | None = None
    stages: list[dict] | None = UNSET
    locales: dict[str, str] | None = None
    published: list[dict] = field(default_factory=list)
    # v1.1: each video rung as encoded and scored (mediaflow.quality): rendition, width, height, bitrate_kbps (from
    # the segments), vmaf, vmaf_min, psnr, ssim; not written for a title without video or from before v1.1
    renditions: list[dict] = UNSET
    warnings: list[str] = UNSET
    reviews: list[Review] | None = UNSET
    compliance: dict | None = UNSET
    quarantine_uri: str | None = UNSET
    alerts: list[dict] = UNSET
    extra: dict = field(default_factory=dict)

    NESTED: ClassVar[dict[str, type]] = {"reviews": Review}

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"summary entry status {self.status!r}: not one of {', '.join(STATUSES)}")


def with_ledger(entry: dict, *, stages: list[dict], alerts: list[dict]) -> dict:
    """An entry (dict form) with its stage spans and alerts from the ledger: replaced where the entry has the key,
    else added at the end (the v1 order of summary.json)."""
    entry["stages"] = stages
    entry["alerts"] = alerts
    return entry
