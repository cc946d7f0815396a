"""Stream specs (v1): include/streams/<name>.yaml loaded into typed, validated objects.

A spec with an error raises SpecError naming the file and the field, so a broken spec fails at DAG parse
time with a message an operator can act on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mediaflow import names
from mediaflow.qc import Thresholds

STREAMS_DIR = Path(__file__).resolve().parent.parent / "streams"
STAGE_ORDER = names.STAGE_ORDER
REVIEW_POLICIES = ("auto", "human")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEYS = {
    "name",
    "owners",
    "ladder",
    "loudness",
    "reviews",
    "channels",
    "stages",
    "lead_time_sla",
    "min_duration_s",
    "qc",
    "review_timeout",
    "review_default",
    "reviewers",
    "retries",
    "quality",
}
REVIEW_DEFAULTS = ("approve", "reject")
QUALITY_ON_FAIL = ("review", "reject")


class SpecError(ValueError):
    """A stream spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Rung:
    height: int
    video_kbps: int


@dataclass(frozen=True)
class Loudness:
    target_lufs: float
    true_peak_dbtp: float


@dataclass(frozen=True)
class Quality:
    """The stream's quality gate (mediaflow.quality.gate): a VMAF floor for every rung (a number) or per rung height
    ({height: floor}; a height not listed takes the floor of the nearest listed height below it, else the smallest
    listed floor), and what a rung below its floor does to the title: QC `review` (default) or `reject`."""

    vmaf_floor: float | tuple[tuple[int, float], ...] | None = None
    on_fail: str = "review"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    owners: tuple[str, ...]
    ladder: tuple[Rung, ...]
    loudness: Loudness
    reviews: dict[str, str]
    channels: tuple[str, ...]
    stage_slas_s: dict[str, float]
    lead_time_sla_s: float
    min_duration_s: float = 1.0
    qc: Thresholds = field(default_factory=Thresholds)
    review_timeout_s: float = 86400.0
    review_default: str = "reject"
    reviewers: tuple[str, ...] = ()
    retries: int = 2  # Airflow retries of a failed task (infrastructure trouble; bad input never fails a task)
    retry_delay_s: float = 10.0  # the first retry's delay; each next one doubles (at most 5 minutes)
    quality: Quality | None = None  # no gate (the scores are still recorded)
    path: str = field(default="", compare=False)

    @property
    def dag_id(self) -> str:
        return names.value_stream_dag_id(self.name)


def parse_duration(text: object) -> float:
    """'90s', '10m', '24h', '2d' -> seconds."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m, 24h or 2d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_S[unit] and seconds % _UNIT_S[unit] == 0:
            return f"{int(seconds // _UNIT_S[unit])}{unit}"
    return f"{seconds:g}s"


def _fail(path: str, fieldname: str, problem: str) -> SpecError:
    return SpecError(f"{path}: field '{fieldname}': {problem}")


def _number(path, name, value, *, lo=None, hi=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, name, f"must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(path, name, f"{value} is outside {lo}..{hi}")
    return float(value)


# long: one check per spec field in the contract's order (docs/contracts.md), each with its own error
def parse_spec(data: object, path: str) -> StreamSpec:
    """Validate one spec document; every error names `path` and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a stream spec must be a YAML mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key (allowed: {', '.join(sorted(_KEYS))})")
    for required in ("name", "owners", "ladder", "loudness", "stages", "lead_time_sla"):
        if required not in data:
            raise _fail(path, required, "is required")

    name = data["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _fail(path, "name", f"{name!r} must match {_NAME.pattern}")
    if Path(path).stem != name:
        raise _fail(path, "name", f"{name!r} must equal the file name {Path(path).stem!r}")

    owners = data["owners"]
    if not isinstance(owners, list) or not owners:
        raise _fail(path, "owners", "must be a non-empty list of email addresses")
    for i, owner in enumerate(owners):
        if not isinstance(owner, str) or not _EMAIL.match(owner):
            raise _fail(path, f"owners[{i}]", f"{owner!r} is not an email address")

    ladder = data["ladder"]
    if not isinstance(ladder, list) or not ladder:
        raise _fail(path, "ladder", "must be a non-empty list of {height, video_kbps}")
    rungs = []
    for i, rung in enumerate(ladder):
        where = f"ladder[{i}]"
        if not isinstance(rung, dict) or set(rung) != {"height", "video_kbps"}:
            raise _fail(path, where, "must be a mapping with exactly height and video_kbps")
        height = _number(path, f"{where}.height", rung["height"], lo=144, hi=4320)
        kbps = _number(path, f"{where}.video_kbps", rung["video_kbps"], lo=100, hi=100000)
        if height % 2:
            raise _fail(path, f"{where}.height", f"{int(height)} must be even (H.264 4:2:0)")
        rungs.append(Rung(int(height), int(kbps)))
    heights = [r.height for r in rungs]
    if len(set(heights)) != len(heights):
        raise _fail(path, "ladder", f"heights must be unique, got {heights}")
    rungs.sort(key=lambda r: -r.height)

    loud = data["loudness"]
    if not isinstance(loud, dict) or set(loud) != {"target_lufs", "true_peak_dbtp"}:
        raise _fail(path, "loudness", "must be a mapping with exactly target_lufs and true_peak_dbtp")
    loudness = Loudness(
        _number(path, "loudness.target_lufs", loud["target_lufs"], lo=-70, hi=-5),
        _number(path, "loudness.true_peak_dbtp", loud["true_peak_dbtp"], lo=-9, hi=0),
    )

    reviews = data.get("reviews", {})
    if not isinstance(reviews, dict):
        raise _fail(path, "reviews", "must be a mapping of review branch to auto|human")
    for branch, policy in reviews.items():
        if policy not in REVIEW_POLICIES:
            raise _fail(path, f"reviews.{branch}", f"{policy!r} must be one of {', '.join(REVIEW_POLICIES)}")

    channels = data.get("channels", ["web"])
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) and _NAME.fullmatch(c) for c in channels)
    ):
        raise _fail(path, "channels", f"must be a non-empty list of names matching {_NAME.pattern}")

    stages = data["stages"]
    if not isinstance(stages, dict) or not stages:
        raise _fail(path, "stages", "must be a mapping of stage name to {sla: duration}")
    slas = {}
    for stage, conf in stages.items():
        if not isinstance(stage, str) or not _NAME.fullmatch(stage):
            raise _fail(path, f"stages.{stage}", f"stage names must match {_NAME.pattern}")
        if not isinstance(conf, dict) or set(conf) != {"sla"}:
            raise _fail(path, f"stages.{stage}", "must be a mapping with exactly sla")
        try:
            slas[stage] = parse_duration(conf["sla"])
        except ValueError as e:
            raise _fail(path, f"stages.{stage}.sla", str(e)) from None
    try:
        lead = parse_duration(data["lead_time_sla"])
    except ValueError as e:
        raise _fail(path, "lead_time_sla", str(e)) from None

    min_duration = _number(path, "min_duration_s", data.get("min_duration_s", 1.0), lo=0, hi=86400)

    qc_conf = data.get("qc", {})
    allowed_qc = set(Thresholds.__dataclass_fields__)
    if not isinstance(qc_conf, dict) or set(qc_conf) - allowed_qc:
        raise _fail(path, "qc", f"must be a mapping with keys from {', '.join(sorted(allowed_qc))}")
    # durations (*_s) are seconds, levels (*_db) dBFS, black_pixel_th a fraction of the luma range
    qc_range = lambda k: (0, 3600) if k.endswith("_s") else (0, 1) if k == "black_pixel_th" else (-120, 0)  # noqa: E731
    thresholds = Thresholds(**{k: _number(path, f"qc.{k}", v, lo=qc_range(k)[0], hi=qc_range(k)[1])
                               for k, v in qc_conf.items()})  # fmt: skip
    try:
        review_timeout = parse_duration(data.get("review_timeout", format_duration(slas.get(names.REVIEW, 86400.0))))
    except ValueError as e:
        raise _fail(path, "review_timeout", str(e)) from None
    review_default = data.get("review_default", "reject")
    if review_default not in REVIEW_DEFAULTS:
        raise _fail(path, "review_default", f"{review_default!r} must be one of {', '.join(REVIEW_DEFAULTS)}")
    reviewers = data.get("reviewers", [])
    if not isinstance(reviewers, list) or not all(isinstance(r, str) and r for r in reviewers):
        raise _fail(path, "reviewers", "must be a list of Airflow user names")
    retry_conf = data.get("retries", {})
    if not isinstance(retry_conf, dict) or set(retry_conf) - {"count", "delay"}:
        raise _fail(path, "retries", "must be a mapping with count and/or delay (e.g. {count: 2, delay: 10s})")
    retries = _number(path, "retries.count", retry_conf.get("count", 2), lo=0, hi=10)
    if retries != int(retries):
        raise _fail(path, "retries.count", f"{retries!r} must be a whole number")
    try:
        retry_delay = parse_duration(retry_conf.get("delay", "10s"))
    except ValueError as e:
        raise _fail(path, "retries.delay", str(e)) from None
    return StreamSpec(
        name=name,
        owners=tuple(owners),
        ladder=tuple(rungs),
        loudness=loudness,
        reviews=dict(reviews),
        channels=tuple(channels),
        stage_slas_s=slas,
        lead_time_sla_s=lead,
        min_duration_s=min_duration,
        qc=thresholds,
        review_timeout_s=review_timeout,
        review_default=review_default,
        reviewers=tuple(reviewers),
        retries=int(retries),
        retry_delay_s=retry_delay,
        quality=_quality(path, data.get("quality")),
        path=path,
    )


def _quality(path: str, conf: object) -> Quality | None:
    """The optional `quality` field: {vmaf_floor: 70 | {1080: 85, 720: 80}, on_fail: review | reject}."""
    if conf is None:
        return None
    if not isinstance(conf, dict) or not conf or set(conf) - {"vmaf_floor", "on_fail"}:
        raise _fail(path, "quality", "must be a mapping with vmaf_floor and/or on_fail (e.g. {vmaf_floor: 70})")
    floor = conf.get("vmaf_floor")
    if isinstance(floor, dict):
        if not floor:
            raise _fail(path, "quality.vmaf_floor", "must list at least one height: floor")
        per_height = []
        for height, value in floor.items():
            if isinstance(height, bool) or not isinstance(height, int) or not 144 <= height <= 4320:
                raise _fail(path, f"quality.vmaf_floor.{height}", "must be a rung height (a whole number 144..4320)")
            per_height.append((height, _number(path, f"quality.vmaf_floor.{height}", value, lo=0, hi=100)))
        floor = tuple(sorted(per_height, reverse=True))
    elif floor is not None:
        floor = _number(path, "quality.vmaf_floor", floor, lo=0, hi=100)
    on_fail = conf.get("on_fail", "review")
    if on_fail not in QUALITY_ON_FAIL:
        raise _fail(path, "quality.on_fail", f"{on_fail!r} must be one of {', '.join(QUALITY_ON_FAIL)}")
    return Quality(vmaf_floor=floor, on_fail=on_fail)


def load_spec(path: str | Path) -> StreamSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return parse_spec(data, str(path))


def spec_dirs() -> list[Path]:
    """include/streams, then the folders in MEDIAFLOW_EXTRA_STREAMS (os.pathsep-separated; used by the tests)."""
    extra = [Path(p) for p in os.environ.get("MEDIAFLOW_EXTRA_STREAMS", "").split(os.pathsep) if p]
    return [STREAMS_DIR, *extra]


def load_specs(directory: str | Path | None = None) -> dict[str, StreamSpec]:
    """Every spec in the folder (default: every folder of `spec_dirs()`), by name. Raises on the first invalid
    spec, and on two specs of the same name."""
    specs: dict[str, StreamSpec] = {}
    for folder in [Path(directory)] if directory else spec_dirs():
        for spec in (load_spec(p) for p in sorted(folder.glob("*.yaml"))):
            if spec.name in specs:
                raise SpecError(
                    f"{spec.path}: field 'name': {spec.name!r} is already defined by {specs[spec.name].path}"
                )
            specs[spec.name] = spec
    return specs
