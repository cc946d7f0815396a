"""Media facts: fixity, ffprobe, and a full decode test that also measures loudness (EBU R128).

ffprobe's exit code alone is not trusted: it succeeds on some empty or truncated files, so every source is
decoded end to end once; the same pass measures integrated loudness and true peak.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from fractions import Fraction
from pathlib import Path

from mediaflow import ffrun, graphs

log = logging.getLogger(__name__)

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


def ffprobe_argv(path: str | Path) -> list[str]:
    # -show_programs: a broadcast transport stream's programmes, to pick the video and the audio of one of them
    return ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_programs",
            str(path)]  # fmt: skip


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


def pick_streams(probe: dict) -> tuple[dict | None, dict | None]:
    """(video, audio) streams of ffprobe JSON the title is made of. Video: the largest picture (the first of equal
    ones; cover art is no picture). Audio: the first audio stream of the video's programme (a transport stream
    with several programmes: not another channel's sound), else the first audio stream. Streams ffprobe could not
    read the parameters of (an audio PID without packets: 0 channels) are passed over."""
    streams = [{**s, "index": s.get("index", i)} for i, s in enumerate(probe.get("streams", []))]
    videos = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    video = max(videos, key=lambda s: int(s.get("width") or 0) * int(s.get("height") or 0), default=None)
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    audios = [s for s in audios if int(s.get("channels") or 0) > 0] or audios
    if video is not None:
        for program in probe.get("programs") or []:
            members = {int(m.get("index", -1)) for m in program.get("streams") or []}
            if video["index"] in members:
                same = [s for s in audios if s["index"] in members]
                if same:
                    return video, same[0]
    return video, (audios[0] if audios else None)


def facts_from_probe(probe: dict) -> dict:
    """Reduce ffprobe JSON to the facts the stream needs (summary.json 'source' shape, loudness added later).
    'index' of video and audio: the stream picked (pick_streams), for `-map 0:<index>`."""
    fmt = probe.get("format", {})
    streams = probe.get("streams", [])
    video, first_audio = pick_streams(probe)
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
            "index": video["index"],
        }
        if not facts["duration_s"]:
            facts["duration_s"] = round(float(video.get("duration") or 0.0), 3)
    if audio:
        facts["audio"] = {"codec": first_audio.get("codec_name"), "channels": int(first_audio.get("channels") or 0),
                          "index": first_audio["index"]}  # fmt: skip
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


def _probe_json(path: Path) -> dict:
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: file is empty (0 bytes)")
    proc = ffrun.run(ffprobe_argv(path), purpose="probe", timeout=ffrun.PROBE_TIMEOUT_S)
    if proc.returncode != 0:
        raise MediaError(f"{path.name}: ffprobe cannot read it: {_tool_message(proc.stderr, path) or 'no detail'}")
    return json.loads(proc.stdout or "{}")


def probe(path: str | Path) -> dict:
    """ffprobe a file; MediaError with ffprobe's message when it cannot be read."""
    path = Path(path)
    facts = facts_from_probe(_probe_json(path))
    if not facts["video"] and not facts["audio_streams"]:
        raise MediaError(f"{path.name}: no video or audio stream found (container {facts['container']})")
    return facts


def _selector(index: int | None, kind: str) -> str:
    """The picked stream of the input (by index), else the first of its kind."""
    return str(index) if index is not None else f"{kind}:0"


def decode_argv(path: str | Path, *, has_video: bool, has_audio: bool, video_index: int | None = None,
                audio_index: int | None = None) -> list[str]:  # fmt: skip
    """The decode test of the picked video and audio stream (by index; else the first of each). -progress on stdout:
    how far the decode got (out_time_us) and how many video frames decoded (frame). Every error line is kept
    ('repeat': not folded into 'Last message repeated'), so errors can be counted."""
    inp = graphs.source(path)
    streams = []
    if has_video:
        streams.append(inp[_selector(video_index, "v")])
    if has_audio:  # loudness as ebur128's frame metadata on stdout too (mediaflow.loudness.METER)
        from mediaflow.loudness import METER  # loudness imports this module's MediaError

        streams.append(graphs.apply_chain(inp[_selector(audio_index, "a")], METER))
    return graphs.command(
        graphs.null_output(*streams),
        global_args=("-nostdin", "-hide_banner", "-nostats", "-loglevel", "repeat+level+info", "-progress", "pipe:1"),
    )


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


def error_count(log: str) -> int:
    """How many error lines a decode_argv log holds (repeats included)."""
    return sum(1 for line in log.splitlines() if _ERROR_LINE.search(line))


def decoded_seconds(progress: str) -> float | None:
    """The media time a decode reached, from its -progress output (None when no frame was decoded)."""
    values = re.findall(r"^out_time_us=(\d+)\s*$", progress, re.M)
    return int(values[-1]) / 1e6 if values else None


def decoded_frames(progress: str) -> int:
    """How many video frames a decode output, from its -progress output."""
    values = re.findall(r"^frame=(\d+)\s*$", progress, re.M)
    return int(values[-1]) if values else 0


# A damaged slice here and there in a long recording is concealed by the decoder and invisible in a rendition:
# this many decode errors per decoded video frame are tolerated (with a warning); more, and the file is corrupt.
RECOVERABLE_SHARE = 0.001
HEAD_PACKETS = 600  # how far into the video stream the first keyframe is looked for (a GOP is 0.5-2 s)
TS_PACKET_SIZES = (188, 192, 204)  # MPEG-TS, M2TS (timecode prefix), TS with Reed-Solomon parity


class DecodeError(MediaError):
    """The decode test found errors (more than tolerated) or stopped early."""


def _ends_inside_packet(path: Path, facts: dict) -> bool:
    """A transport stream whose size is no whole number of packets was cut short (an upload, not a recorder)."""
    if "mpegts" not in str(facts.get("container") or ""):
        return False
    size = path.stat().st_size
    return all(size % n for n in TS_PACKET_SIZES)


def decode_test(path: str | Path, facts: dict) -> tuple[dict | None, list[str]]:
    """Decode every frame of the picked video and audio stream; DecodeError naming the file when it does not decode
    (more errors than RECOVERABLE_SHARE of its frames, a transport stream that ends inside a packet), or when the
    container claims a longer duration than decodes (later steps pad and segment to the claimed duration).
    The decode costs what the file holds, never what it claims.

    Returns (the measured loudness of the audio stream, None without audio; warnings about tolerated errors).
    """
    path = Path(path)
    video, audio = facts.get("video") or {}, facts.get("audio") or {}
    argv = decode_argv(path, has_video=bool(facts["video"]), has_audio=facts["audio_streams"] > 0,
                       video_index=video.get("index"), audio_index=audio.get("index"))  # fmt: skip
    proc = ffrun.run(argv, purpose="decode test", timeout=ffrun.budget_s(facts.get("duration_s")))
    errors, loudness = parse_decode_log(proc.stderr, proc.stdout)
    warnings = []
    if proc.returncode != 0 or errors:
        detail = "; ".join(errors[:3]) or _tool_message(proc.stderr, path)[-300:]
        count, frames = error_count(proc.stderr), decoded_frames(proc.stdout)
        allowed = int(RECOVERABLE_SHARE * frames)
        if proc.returncode != 0 or count > allowed or _ends_inside_packet(path, facts):
            figure = f" ({count} decode errors in {frames} frames, at most {allowed} tolerated)" if frames else ""
            raise DecodeError(f"{path.name}: does not decode cleanly (truncated or corrupt): {detail}{figure}")
        warnings.append(
            f"{path.name}: {count} recoverable decode error(s) in {frames} frames, concealed by the "
            f"decoder (at most {allowed}, {RECOVERABLE_SHARE:.1%} of the frames, tolerated): {detail}"
        )
    decoded, claimed = decoded_seconds(proc.stdout) or 0.0, facts["duration_s"]
    if claimed - decoded > max(CLAIM_TOLERANCE_S, CLAIM_TOLERANCE_SHARE * claimed):
        raise DecodeError(
            f"{path.name}: duration check failed: the container claims {claimed:.2f}s but only {decoded:.2f}s "
            "decodes (a wrong duration field, or media missing)"
        )
    return loudness, warnings


def head_packets_argv(path: str | Path, *, stream_index: int) -> list[str]:
    """The first HEAD_PACKETS packets of one stream: their times and flags (K = keyframe), as JSON."""
    return ["ffprobe", "-v", "error", "-select_streams", str(stream_index), "-show_entries",
            "packet=pts_time,dts_time,flags", "-read_intervals", f"%+#{HEAD_PACKETS}", "-of", "json", str(path)]  # fmt: skip


def leading_frames(path: str | Path, *, stream_index: int) -> dict | None:
    """The video packets before the first keyframe: {'frames', 'seconds' (from the first packet to the keyframe)};
    None when the stream starts with a keyframe or none is found near its start."""
    proc = ffrun.run(head_packets_argv(path, stream_index=stream_index), purpose="first keyframe",
                     timeout=ffrun.PROBE_TIMEOUT_S)  # fmt: skip
    packets = json.loads(proc.stdout or "{}").get("packets") or [] if proc.returncode == 0 else []
    first_key = next((i for i, p in enumerate(packets) if "K" in (p.get("flags") or "")), None)
    if not first_key:  # None (no keyframe near the start) or 0 (starts with one)
        return None
    times = [float(t) for p in packets[: first_key + 1] if (t := p.get("pts_time") or p.get("dts_time")) is not None]
    key_at = float(packets[first_key].get("pts_time") or packets[first_key].get("dts_time") or 0.0)
    first = min(times) if times else key_at
    return {"frames": first_key, "seconds": round(max(0.0, key_at - first), 3)}


def from_keyframe_argv(src: str | Path, out: str | Path, *, video_index: int | None, audio_index: int | None,
                       muxer: str) -> list[str]:  # fmt: skip
    """A copy of the picked video and audio stream, nothing re-encoded. Stream copy leaves out the video packets
    before the first keyframe (ffmpeg copies leading non-keyframes only with -copyinkf), and every other stream
    (other programmes, audio PIDs, teletext, DVB subtitles)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src)]
    if video_index is not None:
        argv += ["-map", f"0:{video_index}"]
    if audio_index is not None:
        argv += ["-map", f"0:{audio_index}"]
    return argv + ["-c", "copy", "-f", muxer, str(out)]


def _first_of(probe_json: dict, kind: str) -> int | None:
    for i, s in enumerate(probe_json.get("streams", [])):
        if s.get("codec_type") == kind and not (kind == "video" and s.get("disposition", {}).get("attached_pic")):
            return s.get("index", i)
    return None


def inspect_source(path: str | Path, *, min_duration_s: float, workdir: str | Path | None = None) -> dict:
    """Probe + decode test + duration bound: the facts of a source we can trust, or MediaError.

    With a `workdir`, a source is prepared there when that is what makes it usable: a broadcast recording that
    starts mid-GOP (the decode fails only on the frames before the first keyframe), or a source whose picked video
    and audio are not the first of each (a transport stream with several programmes or audio PIDs). The prepared
    copy holds the picked streams only, from the first keyframe on, nothing re-encoded; it is checked like any
    source, and the facts are its facts, with 'prepared' (its file name in `workdir`) and 'warnings' (what was
    skipped or tolerated)."""
    path = Path(path)
    raw = _probe_json(path)
    facts = facts_from_probe(raw)
    if not facts["video"] and not facts["audio_streams"]:
        raise MediaError(f"{path.name}: no video or audio stream found (container {facts['container']})")
    if facts["duration_s"] < min_duration_s:
        raise MediaError(
            f"{path.name}: duration {facts['duration_s']:.2f}s is shorter than this stream allows "
            f"(min_duration_s {min_duration_s:g})"
        )
    video_index = (facts.get("video") or {}).get("index")
    audio_index = (facts.get("audio") or {}).get("index")
    picked_first = video_index == _first_of(raw, "video") and audio_index == _first_of(raw, "audio")
    warnings: list[str] = []
    try:
        facts["loudness"], warnings = decode_test(path, facts)
        lead = None
    except DecodeError as e:
        lead = (
            leading_frames(path, stream_index=video_index) if workdir is not None and video_index is not None else None
        )
        if lead is None:
            raise
        log.info(
            "%s: %s; %d frames before the first keyframe: trying from the keyframe on", path.name, e, lead["frames"]
        )
    if workdir is None or (picked_first and lead is None):
        return {**facts, "warnings": warnings} if warnings else facts
    return _prepared(path, facts, raw, lead=lead, workdir=Path(workdir), min_duration_s=min_duration_s)


def _prepared(path: Path, facts: dict, raw: dict, *, lead: dict | None, workdir: Path, min_duration_s: float) -> dict:
    """inspect_source's prepared copy: made, then checked as a source of its own."""
    transport = "mpegts" in str(facts.get("container") or "")
    out = workdir / (path.name if transport else f"{path.stem}.mkv")
    if out.resolve() == path.resolve():
        out = workdir / f"{path.stem}.prepared{path.suffix}"
    proc = ffrun.run(from_keyframe_argv(path, out, video_index=(facts.get("video") or {}).get("index"),
                                       audio_index=(facts.get("audio") or {}).get("index"),
                                       muxer="mpegts" if transport else "matroska"),
                     purpose="copy from the first keyframe", timeout=ffrun.budget_s(facts.get("duration_s")))  # fmt: skip
    if proc.returncode != 0:
        raise DecodeError(f"{path.name}: the picked streams cannot be copied: {_tool_message(proc.stderr, path)}")
    try:
        prepared = inspect_source(out, min_duration_s=min_duration_s)  # no workdir: checked as it is
    except DecodeError as e:
        if lead is None:
            raise
        raise DecodeError(
            f"{path.name}: does not decode cleanly (truncated or corrupt), even from its first keyframe "
            f"on: {str(e).split(': ', 1)[-1]}"
        ) from None
    warnings = list(prepared.pop("warnings", []))
    if lead:
        warnings.insert(
            0,
            f"{path.name}: starts mid-GOP: {lead['frames']} frame(s) ({lead['seconds']:.2f} s) before "
            "the first keyframe do not decode and were skipped; the title starts at that keyframe",
        )
    picked = ((facts.get("video") or {}).get("index"), (facts.get("audio") or {}).get("index"))
    left = sorted(
        int(st.get("index", i)) for i, st in enumerate(raw.get("streams", [])) if st.get("index", i) not in picked
    )
    if left:
        warnings.append(
            f"{path.name}: used video stream {picked[0]} and audio stream {picked[1]} (one programme); "
            f"left out stream(s) {', '.join(map(str, left))}"
        )
    return {**prepared, "prepared": out.name, "warnings": warnings}
