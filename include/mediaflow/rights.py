"""Rights catalog (v1, EMA Avails-inspired): which (channel, territory) an asset may be published to, and when.

The catalog is a CSV with the exact header ``asset_id,territory,channel,window_start,window_end,exclusive``:
ISO 8601 instants with a timezone (``Z`` or an offset), ``window_end`` EXCLUSIVE, ``exclusive`` true/false.
An asset is published to a (channel, territory) only while a row's window covers the publish time; no row, a
window not open yet or a closed one means "not published there" and the legal review is required.

Parsing collects every problem (like the manifest) so a rights team fixes a catalog in one go; each problem
names the catalog, the line and the field, e.g. ``avails.csv:4: field 'window_end': ...``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pycountry

from mediaflow.manifest import ASSET_ID

HEADER = ("asset_id", "territory", "channel", "window_start", "window_end", "exclusive")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # the stream spec's channel names
_BOOL = {"true": True, "false": False}


@dataclass(frozen=True)
class Avail:
    asset_id: str
    territory: str
    channel: str
    window_start: datetime
    window_end: datetime  # exclusive
    exclusive: bool
    line: int
    # Where the row came from, so a conflict can name "catalog:line" after catalogs are merged.
    catalog: str = field(default="avails.csv", compare=False)

    @property
    def key(self) -> tuple:
        """The six catalog values: rows with the same key are the same grant."""
        return (self.asset_id, self.territory, self.channel, self.window_start, self.window_end, self.exclusive)

    @property
    def where(self) -> str:
        return f"{self.catalog}:{self.line}"

    def covers(self, at: datetime) -> bool:
        return self.window_start <= at < self.window_end


@dataclass(frozen=True)
class Decision:
    channel: str
    territory: str
    publishable: bool
    reason: str


class RightsError(ValueError):
    """A catalog is invalid; every problem names the catalog, the line number and the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def valid_territory(code: str) -> bool:
    """A current ISO 3166-1 alpha-2 code, upper case ('GB', not 'UK', 'gb' or 'XX')."""
    return (
        isinstance(code, str)
        and len(code) == 2
        and code.isascii()
        and code.isalpha()
        and code.isupper()
        and pycountry.countries.get(alpha_2=code) is not None
    )


def format_instant(value: datetime) -> str:
    """ISO 8601 with 'Z' for UTC, else with its offset: 2027-01-01T00:00:00Z, 2027-01-01T01:00:00+01:00."""
    if value.utcoffset() == UTC.utcoffset(None):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def _utc(value: datetime) -> str:
    return format_instant(value.astimezone(UTC))


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant WITH a timezone; ValueError (with a reason) otherwise."""
    text = text.strip()
    if "T" not in text.upper() and " " not in text:
        raise ValueError(
            f"{text!r} is not an ISO 8601 instant (needs a date, a time and a timezone, e.g. 2027-01-01T00:00:00Z)"
        )
    try:
        # Python < 3.11 does not read a trailing 'Z'
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 instant (e.g. 2027-01-01T00:00:00Z)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{text!r} has no timezone (add Z or an offset like +01:00)")
    return value


# long: one check per catalog column in the contract's order, each with its own error
def parse_catalog(text: str, *, name: str = "avails.csv") -> list[Avail]:
    """Parse and validate a catalog; RightsError listing every problem, each naming `name:line` and the field."""
    if text.startswith("\ufeff"):  # a spreadsheet's UTF-8 byte order mark
        text = text[1:]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise RightsError([f"{name}:1: field 'header': the catalog is empty (header must be {','.join(HEADER)})"])
    header = [h.strip() for h in header]
    if tuple(header) != HEADER:
        for i, expected in enumerate(HEADER):
            got = header[i] if i < len(header) else None
            if got != expected:
                problem = (f"column {i + 1} is {got!r} but must be {expected!r}" if got is not None
                           else f"column {i + 1} {expected!r} is missing")  # fmt: skip
                break
        else:
            problem = f"unexpected extra column {header[len(HEADER)]!r}"
        raise RightsError([f"{name}:1: field 'header': {problem} (header must be exactly {','.join(HEADER)})"])

    avails: list[Avail] = []
    problems: list[str] = []
    line = reader.line_num
    for row in reader:
        start_line, line = line + 1, reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        where = f"{name}:{start_line}"
        if len(row) != len(HEADER):
            problems.append(f"{where}: expected {len(HEADER)} fields ({','.join(HEADER)}), got {len(row)}")
            continue
        values = dict(zip(HEADER, (cell.strip() for cell in row), strict=False))
        row_problems: list[str] = []

        asset_id = values["asset_id"]
        if not asset_id:
            row_problems.append(f"{where}: field 'asset_id' is empty")
        elif not ASSET_ID.fullmatch(asset_id):
            row_problems.append(f"{where}: field 'asset_id' {asset_id!r} must match {ASSET_ID.pattern}")

        territory = values["territory"]
        if not valid_territory(territory):
            hint = f" (did you mean {territory.upper()!r}?)" if valid_territory(territory.upper()) else ""
            row_problems.append(
                f"{where}: field 'territory' {territory!r} is not an ISO 3166-1 alpha-2 country code{hint}"
            )

        channel = values["channel"]
        if not _CHANNEL.fullmatch(channel):
            row_problems.append(
                f"{where}: field 'channel' {channel!r} must be a channel name matching {_CHANNEL.pattern}"
            )

        instants = {}
        for key in ("window_start", "window_end"):
            try:
                instants[key] = parse_instant(values[key])
            except ValueError as e:
                row_problems.append(f"{where}: field '{key}' {e}")
        if len(instants) == 2 and not instants["window_start"] < instants["window_end"]:
            row_problems.append(
                f"{where}: field 'window_end' {values['window_end']!r} must be after window_start "
                f"{values['window_start']!r} (window_end is exclusive)"
            )

        exclusive = _BOOL.get(values["exclusive"].lower())
        if exclusive is None:
            row_problems.append(f"{where}: field 'exclusive' {values['exclusive']!r} must be true or false")

        if row_problems:
            problems += row_problems
            continue
        avails.append(
            Avail(
                asset_id,
                territory,
                channel,
                instants["window_start"],
                instants["window_end"],
                exclusive,
                start_line,
                catalog=name,
            )  # fmt: skip
        )
    if problems:
        raise RightsError(problems)
    return avails


def merge_catalogs(base: list[Avail], extra: list[Avail]) -> list[Avail]:
    """Union of two catalogs in order; rows with the same six values are kept once (the first one)."""
    seen: set[tuple] = set()
    merged = []
    for avail in [*base, *extra]:
        if avail.key not in seen:
            seen.add(avail.key)
            merged.append(avail)
    return merged


def to_csv(avails: list[Avail]) -> str:
    """The catalog as CSV text (header included) that parse_catalog reads back to the same rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for a in avails:
        writer.writerow([a.asset_id, a.territory, a.channel, format_instant(a.window_start),
                         format_instant(a.window_end), "true" if a.exclusive else "false"])  # fmt: skip
    return out.getvalue()


def _decide_one(rows: list[Avail], *, channel: str, territory: str, at: datetime) -> Decision:
    if not valid_territory(territory):
        return Decision(channel, territory, False, f"territory {territory!r} is not an ISO 3166-1 code")
    if not rows:
        return Decision(channel, territory, False, f"no avail for {channel}/{territory}")
    covering = [a for a in rows if a.covers(at)]
    if not covering:
        upcoming = [a.window_start for a in rows if a.window_start > at]
        if upcoming:
            return Decision(channel, territory, False, f"window not open yet (opens {_utc(min(upcoming))})")
        return Decision(channel, territory, False, f"window closed (ended {_utc(max(a.window_end for a in rows))})")
    grants: dict[tuple, Avail] = {}
    for a in covering:  # identical rows are one grant (first row kept), not a conflict
        grants.setdefault(a.key, a)
    distinct = list(grants.values())
    if len(distinct) > 1 and any(a.exclusive for a in distinct):
        first = next(a for a in distinct if a.exclusive)
        other = next(a for a in distinct if a is not first)
        more = f" (and {len(distinct) - 2} more)" if len(distinct) > 2 else ""
        return Decision(
            channel, territory, False,
            f"exclusivity conflict: {first.where} (exclusive) and {other.where}{more} both cover "
            f"{_utc(at)} for {channel}/{territory}",
        )  # fmt: skip
    return Decision(channel, territory, True, f"window open until {_utc(max(a.window_end for a in covering))}")


def decide(
    avails: list[Avail], *, asset_id: str, channels: list[str], territories: list[str], at: datetime
) -> list[Decision]:
    """One Decision per (channel, territory), channel-major. Publishable iff window_start <= at < window_end."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"decide: 'at' must be timezone-aware, got naive {at.isoformat()}")
    mine = [a for a in avails if a.asset_id == asset_id]
    decisions = []
    for channel in channels:
        for territory in territories:
            rows = [a for a in mine if a.channel == channel and a.territory == territory]
            decisions.append(_decide_one(rows, channel=channel, territory=territory, at=at))
    return decisions


def legal_review_required(decisions: list[Decision]) -> bool:
    """True when any (channel, territory) is not publishable, or when there are no decisions at all
    (nothing was cleared, so a person must look)."""
    return not decisions or any(not d.publishable for d in decisions)
