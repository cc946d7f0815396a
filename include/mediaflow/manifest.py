"""Delivery manifest (v1): validation that names the field or file at fault.

Validation collects every problem rather than stopping at the first, so a vendor fixes a delivery in one go.
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

ASSET_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ASSET_ID_CHARS = re.compile(r"[a-z0-9._-]")
# File names become object keys, local paths and ffmpeg arguments: plain ASCII only, so no look-alike, invisible
# or shell character gets through.
FILE_NAME_CHARS = re.compile(r"[A-Za-z0-9._/-]")
MAX_FILE_NAME = 255
REQUIRED = ("asset_id", "title", "value_stream", "source", "territories")
KNOWN = set(REQUIRED) | {"captions", "audio", "channels", "rating", "delivered_at", "metadata"}
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    asset_id: str
    title: str
    value_stream: str
    source_file: str | None
    source_sha256: str | None
    territories: tuple[str, ...]
    channels: tuple[str, ...] = ()
    captions: tuple[dict, ...] = ()
    audio: tuple[dict, ...] = ()
    rating: dict | None = None
    delivered_at: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def sidecar_only(self) -> bool:
        """Captions and/or audio for a title published earlier: no source, no transcode."""
        return self.source_file is None

    def files(self) -> list[str]:
        """Every file the manifest names, source first."""
        source = [self.source_file] if self.source_file else []
        return source + [c["file"] for c in self.captions] + [a["file"] for a in self.audio]


class ManifestError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _first_unlike(text: str, chars: re.Pattern[str]) -> str | None:
    return next((c for c in text if not chars.fullmatch(c)), None)


def describe_char(ch: str) -> str:
    """A character as a reason shows it: quoted, with its code point and Unicode name (look-alikes, invisibles)."""
    name = unicodedata.name(ch, "")
    return f"{ch!r} (U+{ord(ch):04X}{' ' + name if name else ''})"


def file_name_problem(field_name: str, name: object) -> str | None:
    """Why a file named in a manifest is refused ("field '<field>' ..."), or None. It must be plain ASCII and stay
    inside its delivery folder."""
    if not isinstance(name, str) or not name:
        return f"field '{field_name}' must be a file name (a non-empty string)"
    bad = _first_unlike(name, FILE_NAME_CHARS)
    if bad is not None:
        return (
            f"field '{field_name}' {name!r} contains {describe_char(bad)}: file names may use only ASCII "
            "letters, digits, '.', '_', '-' and '/' between folders"
        )
    if len(name) > MAX_FILE_NAME:
        return f"field '{field_name}' is {len(name)} characters long (max {MAX_FILE_NAME})"
    if name.startswith("/") or ".." in name.split("/") or posixpath.normpath(name) != name:
        return f"field '{field_name}' {name!r} must be a path inside the delivery"
    return None


def named_files(data: dict) -> list[tuple[str, object]]:
    """(field, file name) of every file a parsed manifest document names, where its structure allows."""
    out: list[tuple[str, object]] = []
    if isinstance(data.get("source"), dict) and "file" in data["source"]:
        out.append(("source.file", data["source"]["file"]))
    for kind in ("captions", "audio"):
        items = data.get(kind)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and "file" in item:
                out.append((f"{kind}[{i}].file", item["file"]))
    return out


# long: one check per manifest field in the contract's order (docs/contracts.md), each with its own error
def parse_manifest(raw: bytes | str, *, known_streams: set[str] | None = None) -> Manifest:
    """Parse and validate; raise ManifestError listing every problem, each naming manifest.json and the field."""
    where = MANIFEST_NAME
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError([f"{where}: not valid JSON: {e}"]) from None
    except RecursionError:
        raise ManifestError([f"{where}: not valid JSON: nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ManifestError([f"{where}: must be a JSON object"])

    problems: list[str] = []
    for key in sorted(set(data) - KNOWN):
        problems.append(f"{where}: unknown top-level key '{key}' (free-form fields go under 'metadata')")
    # A sidecar-only delivery (captions and/or audio for an already-published title) carries no source.
    sidecar_only = "source" not in data and bool(data.get("captions") or data.get("audio"))
    for key in REQUIRED:
        if key == "source" and sidecar_only:
            continue
        if key not in data or data[key] in (None, "", [], {}):
            problems.append(f"{where}: required field '{key}' is missing")

    asset_id = data.get("asset_id")
    if asset_id not in (None, ""):
        if not isinstance(asset_id, str) or "/" in asset_id or ".." in asset_id or not ASSET_ID.fullmatch(asset_id):
            bad = _first_unlike(asset_id, ASSET_ID_CHARS) if isinstance(asset_id, str) else None
            which = f"contains {describe_char(bad)}: it " if bad else ""
            problems.append(
                f"{where}: field 'asset_id' {asset_id!r} {which}must match {ASSET_ID.pattern} (no '/', no '..')"
            )
    title = data.get("title")
    if title not in (None, "") and not isinstance(title, str):
        problems.append(f"{where}: field 'title' must be a string")

    stream = data.get("value_stream")
    if stream not in (None, ""):
        if not isinstance(stream, str):
            problems.append(f"{where}: field 'value_stream' must be a string")
        elif known_streams is not None and stream not in known_streams:
            problems.append(
                f"{where}: field 'value_stream' {stream!r} is not a known value stream "
                f"(known: {', '.join(sorted(known_streams))})"
            )

    source = data.get("source")
    source_file = sha = None
    if source not in (None, "", {}):
        if not isinstance(source, dict):
            problems.append(f"{where}: field 'source' must be an object with 'file'")
        else:
            source_file = source.get("file")
            if source_file in (None, ""):
                problems.append(f"{where}: required field 'source.file' is missing")
            elif problem := file_name_problem("source.file", source_file):
                problems.append(f"{where}: {problem}")
            sha = source.get("sha256")
            if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
                problems.append(f"{where}: field 'source.sha256' must be 64 hex digits")
            for key in sorted(set(source) - {"file", "sha256"}):
                problems.append(f"{where}: unknown key 'source.{key}'")

    territories = data.get("territories")
    if territories not in (None, "", []):
        if not isinstance(territories, list) or not all(
            isinstance(t, str) and re.fullmatch(r"[A-Z]{2}", t) for t in territories
        ):
            problems.append(f"{where}: field 'territories' must be a list of two-letter codes like 'US'")

    channels = data.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        problems.append(f"{where}: field 'channels' must be a list of channel names")

    sidecars = {}
    for kind in ("captions", "audio"):
        items = data.get(kind, [])
        if not isinstance(items, list):
            problems.append(f"{where}: field '{kind}' must be a list of {{locale, file}}")
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("locale") or not item.get("file"):
                problems.append(f"{where}: field '{kind}[{i}]' needs 'locale' and 'file'")
                continue
            if not isinstance(item["locale"], str):
                problems.append(f"{where}: field '{kind}[{i}].locale' must be a string like 'en-US'")
            if problem := file_name_problem(f"{kind}[{i}].file", item["file"]):
                problems.append(f"{where}: {problem}")
        sidecars[kind] = items if isinstance(items, list) else []

    delivered_at = data.get("delivered_at")
    if delivered_at is not None:
        try:
            if not isinstance(delivered_at, str):
                raise ValueError
            datetime.fromisoformat(delivered_at.replace("Z", "+00:00"))
        except ValueError:
            problems.append(
                f"{where}: field 'delivered_at' {delivered_at!r} is not an ISO 8601 instant "
                "(a string like '2026-11-28T01:00:00Z')"
            )
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.append(f"{where}: field 'metadata' must be an object")
    rating = data.get("rating")
    if rating is not None and not isinstance(rating, dict):
        problems.append(f"{where}: field 'rating' must be an object like {{scheme, value}}")

    if problems:
        raise ManifestError(problems)
    return Manifest(
        asset_id=asset_id,
        title=title,
        value_stream=stream,
        source_file=source_file,
        source_sha256=sha.lower() if sha else None,
        territories=tuple(territories),
        channels=tuple(channels),
        captions=tuple(sidecars["captions"]),
        audio=tuple(sidecars["audio"]),
        rating=rating,
        delivered_at=delivered_at,
        metadata=metadata,
    )
