"""Media facts: fixity, ffprobe, and a full decode test that also measures loudness (EBU R128).

ffprobe's exit code alone is not trusted: it succeeds on some empty or truncated files, so every source is
decoded end to end once; the same pass measures integrated loudness and true peak.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

from mediaflow.capacity import media_priority

PROGRESSIVE = {"progressive", "unknown", ""}
# The container's duration may exceed what decodes by this much (or this share of the claim): priming, rounding.
CLAIM_TOLERANCE_S, CLAIM_TOLERANCE_SHARE = 1.0, 0.02


class MediaError(ValueError):
    """The media itself is bad (bad input, not a system fault)."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def run_tool(argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess:
    """Run an ffmpeg/ffprobe argv (no shell) at media priority, below the control plane (mediaflow.capacity), its
    output captured as text. Every ffmpeg/ffprobe the domain starts goes through here."""
    return subprocess.run(argv, capture_output=True, text=True, errors="backslashreplace", check=check,
                          preexec_fn=media_priority())  # fmt: skip


def ffprobe_argv(path: str | Path) -> list[str]:
    return ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(side["rotation"]) % 360
    return int(stream.get("tags", {}).get("rotate", 0) or 0) % 360


def facts_from_probe(probe: dict) -> dict:
    """Reduce ffprobe JSON to the facts the stream needs (summary.json 'source' shape, loudness added later)."""
    fmt = probe.get("format", {})
    streams = probe.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    cc_track = any(s.get("codec_name") == "eia_608" for s in streams)
    facts = {
        "container": fmt.get("format_name"),
        "duration_s": round(float(fmt.get("duration") or 0.0), 3),
        "video": None,
        "audio_streams": len(audio),
        "loudness": None,
    }
    if video:
        width, height = int(video.get("width") or 0), int(video.get("height") or 0)
        if _rotation(video) in (90, 270):  # players and ffmpeg's autorotate show it turned
            width, height = height, width
        avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
        facts["video"] = {
            "codec": video.get("codec_name"),
            "width": width,
            "height": height,
            "fps": round(avg or real, 3),
            "interlaced": (video.get("field_order") or "").lower() not in PROGRESSIVE,
            # avg != r_frame_rate is how ffprobe shows a variable frame rate
            "vfr": bool(avg and real and abs(avg - real) > 0.01),
            # non-square pixels (e.g. PAL 16:9 is 720x576 at 64:45): the ladder is sized on the display shape
            "sar": round(_rate((video.get("sample_aspect_ratio") or "1:1").replace(":", "/")) or 1.0, 6),
        }
        if not facts["duration_s"]:
            facts["duration_s"] = round(float(video.get("duration") or 0.0), 3)
    if audio:
        facts["audio"] = {"codec": audio[0].get("codec_name"), "channels": int(audio[0].get("channels") or 0)}
    # CEA-608/708 captions: a c608 track (broadcast .mov) or A/53 data inside the video (closed_captions=1)
    facts["embedded_captions"] = "track" if cc_track else ("a53" if video and video.get("closed_captions") else None)
    return facts


def extract_captions_argv(src: str | Path, out_vtt: str | Path, kind: str) -> list[str]:
    """Embedded CEA-608 captions -> WebVTT with ffmpeg's cc decoder; `kind` is facts['embedded_captions']."""
    if kind == "track":
        inputs = ["-i", str(src), "-map", "0:s:0"]
    else:  # A/53 side data: the movie source exposes it as a subtitle output pad
        # the name is parsed twice: as the movie filter's option value, then as part of the filtergraph
        escaped = re.sub(r"([\\':])", r"\\\1", str(src))
        escaped = re.sub(r"([\\'\[\],;])", r"\\\1", escaped)
        inputs = ["-f", "lavfi", "-i", f"movie={escaped}[out0+subcc]", "-map", "0:1"]
    return ["ffmpeg", "-nostdin", "-hide_banner", "-y", *inputs, "-c:s", "webvtt", "-f", "webvtt", str(out_vtt)]


def _tool_message(stderr: str, path: Path) -> str:
    """ffmpeg/ffprobe stderr as a reason: without our local path, '[demuxer @ 0x..]' prefixes and repeats."""
    lines = []
    for line in stderr.replace(str(path), path.name).splitlines():
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
        if line and not line.startswith("Last message repeated") and line not in lines:
            lines.append(line)
    return "; ".join(lines)[-400:]


def probe(path: str | Path) -> dict:
    """ffprobe a file; MediaError with ffprobe's message when it cannot be read."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: file is empty (0 bytes)")
    proc = run_tool(ffprobe_argv(path))
    if proc.returncode != 0:
        raise MediaError(f"{path.name}: ffprobe cannot read it: {_tool_message(proc.stderr, path) or 'no detail'}")
    facts = facts_from_probe(json.loads(proc.stdout or "{}"))
    if not facts["video"] and not facts["audio_streams"]:
        raise MediaError(f"{path.name}: no video or audio stream found (container {facts['container']})")
    return facts


def decode_argv(path: str | Path, *, has_video: bool, has_audio: bool) -> list[str]:
    # -progress on stdout: how far the decode got (out_time_us), to hold the container's duration claim against
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-progress", "pipe:1",
            "-i", str(path)]
    if has_video:
        argv += ["-map", "0:v:0"]
    if has_audio:  # loudness as ebur128's frame metadata on stdout too (mediaflow.loudness.METER)
        from mediaflow.loudness import METER  # loudness imports this module's MediaError

        argv += ["-map", "0:a:0", "-filter:a", METER]
    return argv + ["-f", "null", "-"]


_ERROR_LINE = re.compile(r"\[(error|fatal|panic)\]")
def parse_decode_log(log: str, metadata: str = "") -> tuple[list[str], dict | None]:
    """(decode errors, loudness) from a decode_argv run: errors from its log, loudness from the ebur128 metadata
    on its stdout (mediaflow.loudness.parse_metadata), None without any."""
    from mediaflow.loudness import parse_metadata  # loudness imports this module's MediaError

    errors = []
    for line in log.splitlines():
        if _ERROR_LINE.search(line):
            text = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
            if text and text not in errors:
                errors.append(text)
    return errors, parse_metadata(metadata)


def decoded_seconds(progress: str) -> float | None:
    """The media time a decode reached, from its -progress output (None when no frame was decoded)."""
    values = re.findall(r"^out_time_us=(\d+)\s*$", progress, re.M)
    return int(values[-1]) / 1e6 if values else None


def decode_test(path: str | Path, facts: dict) -> dict | None:
    """Decode every frame of the first video and audio stream; MediaError naming the file on any error, or when
    the container claims a longer duration than decodes (later steps pad and segment to the claimed duration).
    The decode costs what the file holds, never what it claims.

    Returns the measured loudness of the first audio stream (None without audio).
    """
    path = Path(path)
    argv = decode_argv(path, has_video=bool(facts["video"]), has_audio=facts["audio_streams"] > 0)
    proc = run_tool(argv)
    errors, loudness = parse_decode_log(proc.stderr, proc.stdout)
    if proc.returncode != 0 or errors:
        detail = "; ".join(errors[:3]) or _tool_message(proc.stderr, path)[-300:]
        raise MediaError(f"{path.name}: does not decode cleanly (truncated or corrupt): {detail}")
    decoded, claimed = decoded_seconds(proc.stdout) or 0.0, facts["duration_s"]
    if claimed - decoded > max(CLAIM_TOLERANCE_S, CLAIM_TOLERANCE_SHARE * claimed):
        raise MediaError(
            f"{path.name}: duration check failed: the container claims {claimed:.2f}s but only {decoded:.2f}s "
            "decodes (a wrong duration field, or media missing)"
        )
    return loudness


def inspect_source(path: str | Path, *, min_duration_s: float) -> dict:
    """Probe + decode test + duration bound: the facts of a source we can trust, or MediaError."""
    facts = probe(path)
    if facts["duration_s"] < min_duration_s:
        raise MediaError(
            f"{Path(path).name}: duration {facts['duration_s']:.2f}s is shorter than this stream allows "
            f"(min_duration_s {min_duration_s:g})"
        )
    facts["loudness"] = decode_test(path, facts)
    return facts
