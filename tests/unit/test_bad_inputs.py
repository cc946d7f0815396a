"""Bad deliveries through the real library path of a title (the S3 API over HTTP, real ffprobe and ffmpeg): each is
`rejected` with a reason naming the file or field and the check, its originals kept in quarantine, nothing
published, and quickly (no hang). Manifest-level inputs are refused by the batch's GX suite too; a bad caption file
rejects its locale only, and the title publishes without it.
"""

from __future__ import annotations

import json
import struct
import subprocess
import time

import pytest

from mediaflow import batch, captions, flow, localize
from mediaflow.spec import load_specs
from mediaflow_dev import samples

SPECS = load_specs()
SPEC = SPECS["news_clip"]  # min_duration_s 1
RUN_ID = "manual__bad-inputs"
TEN_HOURS_S = 36000
MAX_S = 30  # no input may take longer than this to refuse


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media_files(tmp_path_factory) -> dict[str, bytes]:
    """Tiny real media from lavfi sources: a 2 s clip as MP4, MKV and MPEG-TS, and a 0.1 s clip."""
    d = tmp_path_factory.mktemp("media")
    samples.make_video(d / "clip.mp4", width=128, height=72, fps=25, seconds=2)
    _ffmpeg("-i", str(d / "clip.mp4"), "-c", "copy", str(d / "clip.mkv"))
    _ffmpeg("-i", str(d / "clip.mp4"), "-c", "copy", "-f", "mpegts", str(d / "clip.ts"))
    samples.make_video(d / "short.mp4", width=128, height=72, fps=25, seconds=0.1)
    return {p.name: p.read_bytes() for p in d.iterdir()}


# ---------------------------------------------------------------- hand-made bad media


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def mp4_claiming(data: bytes, seconds: float) -> bytes:
    """The movie header (mvhd) says `seconds`; the samples stay as they are."""
    out = bytearray(data)
    i = 0
    while i + 8 <= len(out):
        size, kind = struct.unpack_from(">I4s", out, i)
        if kind == b"moov":
            i += 8  # into the container
            continue
        if kind == b"mvhd":
            version = out[i + 8]
            ts_at, dur_fmt = (i + 20, ">I") if version == 0 else (i + 28, ">Q")
            timescale = struct.unpack_from(">I", out, ts_at)[0]
            struct.pack_into(dur_fmt, out, ts_at + 4, int(seconds * timescale))
            return bytes(out)
        i += size
    raise AssertionError("no mvhd box")


def mkv_claiming(data: bytes, seconds: float) -> bytes:
    """The Segment Info's Duration element (ID 0x4489, an 8-byte float in 1 ms ticks) says `seconds`."""
    out = bytearray(data)
    at = out.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element"
    struct.pack_into(">d", out, at + 3, seconds * 1000.0)
    return bytes(out)


def wav_without_channels() -> bytes:
    """A RIFF/WAVE header declaring PCM with 0 channels, then a second of zero bytes."""
    body = b"\x00" * 96000
    fmt = struct.pack("<HHIIHH", 1, 0, 48000, 0, 0, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(body)) + body)  # fmt: skip


# ---------------------------------------------------------------- deliveries


def manifest(file: str = "clip.mp4", **over) -> dict:
    doc = {"asset_id": "bad-input", "title": "Bad input", "value_stream": "news_clip", "source": {"file": file},
           "territories": ["US"], "channels": ["web"]}  # fmt: skip
    doc.update(over)
    return doc


def source(name: str, data):
    """A delivery of one source file: (files, manifest)."""
    return lambda m: ({name: data(m) if callable(data) else data}, manifest(name))


def named(field: str, value: str):
    """A hostile asset id, or a hostile source file name (a good clip delivered under that name)."""
    if field == "asset_id":
        return lambda m: ({"clip.mp4": m["clip.mp4"]}, manifest(asset_id=value))
    return lambda m: ({value: m["clip.mp4"]}, manifest(value))


HOSTILE_NAMES = [
    ("traversal", "../../etc/passwd", "'/' (U+002F SOLIDUS)", "must be a path inside the delivery"),
    ("semicolon", "a;rm -rf", "';' (U+003B SEMICOLON)", "';' (U+003B SEMICOLON)"),
    ("command-substitution", "$(id)", "'$' (U+0024 DOLLAR SIGN)", "'$' (U+0024 DOLLAR SIGN)"),
    ("backtick", "a`id`", "'`' (U+0060 GRAVE ACCENT)", "'`' (U+0060 GRAVE ACCENT)"),
    ("division-slash", "\u2215etc\u2215passwd", "U+2215 DIVISION SLASH", "U+2215 DIVISION SLASH"),
    ("one-dot-leader", "\u2024\u2024/x", "U+2024 ONE DOT LEADER", "U+2024 ONE DOT LEADER"),
    (
        "fullwidth",
        "\uff43\uff4c\uff49\uff50",
        "U+FF43 FULLWIDTH LATIN SMALL LETTER C",
        "U+FF43 FULLWIDTH LATIN SMALL LETTER C",
    ),
    ("zero-width-space", "clip\u200b1", "U+200B ZERO WIDTH SPACE", "U+200B ZERO WIDTH SPACE"),
    ("right-to-left-override", "clip\u202e4pm", "U+202E RIGHT-TO-LEFT OVERRIDE", "U+202E RIGHT-TO-LEFT OVERRIDE"),
]  # (id, value, in asset_id the reason names, in a file name the reason names)

CASES = [  # (what is delivered, fragments that must all be in the reasons)
    pytest.param(source("clip.mp4", b""), ["clip.mp4: file is empty (0 bytes)"], id="zero-byte"),
    *[
        pytest.param(
            source(f"clip.{ext}", lambda m, ext=ext: truncated(m[f"clip.{ext}"])),
            [f"clip.{ext}: does not decode cleanly (truncated or corrupt): "],
            id=f"truncated-{ext}",
        )
        for ext in ("mp4", "mkv", "ts")
    ],
    pytest.param(
        source("clip.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
        ["clip.mp4: ffprobe cannot read it: moov atom not found"],
        id="magic-bytes-only",
    ),
    pytest.param(
        source("notes.mp4", b"Shot list, day 2:\n- wide\n- close-up\n" * 20),
        ["notes.mp4: ffprobe cannot read it", "Invalid data found when processing input"],
        id="text-named-mp4",
    ),
    pytest.param(
        source("tone.wav", wav_without_channels()),
        ["tone.wav: ffprobe cannot read it: Decoder requires channel count but channels not set"],
        id="audio-0-channels",
    ),
    pytest.param(
        source("short.mp4", lambda m: m["short.mp4"]),
        ["short.mp4: duration 0.1", "is shorter than this stream allows (min_duration_s 1)"],
        id="clip-0.1s",
    ),
    *[
        pytest.param(
            source(f"clip.{ext}", lambda m, ext=ext, patch=patch: patch(m[f"clip.{ext}"], TEN_HOURS_S)),
            [f"clip.{ext}: duration check failed: the container claims 36000.00s but only 2.", "s decodes"],
            id=f"ten-hour-claim-{ext}",
        )
        for ext, patch in (("mp4", mp4_claiming), ("mkv", mkv_claiming))
    ],
    pytest.param(
        lambda m: ({"clip.mp4": m["clip.mp4"]}, b'{"asset_id": "bad-input", "title": '),
        ["manifest.json: not valid JSON: Expecting value: line 1 column 36"],
        id="manifest-not-json",
    ),
    pytest.param(
        lambda m: ({"clip.mp4": m["clip.mp4"]}, b"[" * 100_000 + b"]" * 100_000),
        ["manifest.json: not valid JSON: nested too deeply"],
        id="manifest-nested-too-deeply",
    ),
    pytest.param(
        lambda m: (
            {"clip.mp4": m["clip.mp4"]},
            manifest(title=7, territories="US", captions={"locale": "en-US"}, delivered_at=20261128),
        ),
        [
            "field 'title' must be a string",
            "field 'territories' must be a list of two-letter codes",
            "field 'captions' must be a list",
            "field 'delivered_at' 20261128 is not an ISO 8601 instant",
        ],
        id="manifest-wrong-types",
    ),
    pytest.param(
        lambda m: ({"clip.mp4": m["clip.mp4"]}, manifest(source={"file": "clip.mp4", "sha256": "0" * 64})),
        [f"clip.mp4: sha256 fixity check failed (manifest {'0' * 64}, file "],
        id="sha256-mismatch",
    ),
    *[
        pytest.param(named("asset_id", value), [f"field 'asset_id' {value!r} contains ", in_id], id=f"asset-id-{i}")
        for i, value, in_id, _ in HOSTILE_NAMES
    ],
    *[
        pytest.param(named("source.file", value), [f"field 'source.file' {value!r}", in_file], id=f"file-name-{i}")
        for i, value, _, in_file in HOSTILE_NAMES
    ],
    pytest.param(
        lambda m: (
            {"clip.mp4": m["clip.mp4"], "en\u202ets.srt": b"1\n00:00:00,500 --> 00:00:01,500\nHi\n"},
            manifest(captions=[{"locale": "en-US", "file": "en\u202ets.srt"}]),
        ),
        ["field 'captions[0].file' 'en\\u202ets.srt' contains '\\u202e' (U+202E RIGHT-TO-LEFT OVERRIDE)"],
        id="caption-file-name-rtl-override",
    ),
]


def deliver(store, buckets, delivery_id: str, files: dict[str, bytes], doc: dict | bytes) -> str:
    prefix = f"deliveries/{delivery_id}/"
    for name, data in files.items():
        store.put_bytes(data, buckets.landing, prefix + name)
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    store.put_bytes(raw, buckets.landing, prefix + "manifest.json")  # last, as uploads do
    return prefix


def objects(store, bucket: str, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix) :]: store.get_bytes(bucket, key) for key in store.list(bucket, prefix)}


@pytest.mark.parametrize("build, expected", CASES)
def test_a_bad_delivery_is_rejected_with_its_reason_kept_in_quarantine_and_nothing_published(
    s3, media_files, build, expected
):
    store, buckets = s3
    files, doc = build(media_files)
    prefix = deliver(store, buckets, "bad-delivery", files, doc)
    delivered = objects(store, buckets.landing, prefix)
    assert set(delivered) == set(files) | {"manifest.json"}, "the S3 API kept every key as delivered"

    started = time.monotonic()
    result = flow.ingest(store, buckets, delivery="bad-delivery", spec=SPEC, known_streams=set(SPECS), run_id=RUN_ID)
    elapsed = time.monotonic() - started

    assert result["status"] == "rejected", result
    reasons = "\n".join(result["reasons"])
    for fragment in expected:
        assert fragment in reasons, f"{fragment!r} not in the reasons:\n{reasons}"
    assert elapsed < MAX_S, f"took {elapsed:.1f}s to refuse"

    assert result["quarantine_uri"] == f"s3://{buckets.quarantine}/deliveries/bad-delivery/"
    kept = objects(store, buckets.quarantine, "deliveries/bad-delivery/")
    record = json.loads(kept.pop(flow.REJECTION_FILE))
    assert record["reasons"] == result["reasons"]
    assert kept == delivered, "the quarantine holds the originals, byte for byte"
    assert objects(store, buckets.landing, prefix) == delivered, "landing keeps them too"
    assert store.list(buckets.distribution, "") == {}, "nothing published"
    assert store.list(buckets.work, "") == {}, "nothing half-processed"


# ---------------------------------------------------------------- the batch's GX suite on the manifest-level inputs

BATCH_CASES = {  # delivery id: (what is delivered, fragments of the suite's reasons)
    "not-json": (b'{"asset_id": "bad-input", "title": ', ["manifest.json: not valid JSON (Expecting value"]),
    "nested-too-deeply": (b"[" * 100_000 + b"]" * 100_000, ["manifest.json: not valid JSON (nested too deeply)"]),
    "wrong-types": (
        manifest(title=7, territories="US"),
        [
            "manifest.json: field 'title' must be a string, got int",
            "manifest.json: field 'territories': '\"US\"' must be ISO 3166-1 alpha-2 codes",
        ],
    ),
    **{
        f"asset-id-{i}": (manifest(asset_id=value), [f"manifest.json: field 'asset_id': {value!r} must match"])
        for i, value, _, _ in HOSTILE_NAMES
    },
    **{
        f"file-name-{i}": (manifest(value), [f"manifest.json: field 'source.file' {value!r}", in_file])
        for i, value, _, in_file in HOSTILE_NAMES
    },
    "caption-file-name": (
        manifest(captions=[{"locale": "en-US", "file": "en\u202ets.srt"}]),
        ["manifest.json: field 'captions[0].file'", "U+202E RIGHT-TO-LEFT OVERRIDE"],
    ),
}


def test_manifest_level_bad_inputs_are_refused_by_the_batch_suite_with_the_same_reasons(s3):
    store, buckets = s3
    for delivery_id, (doc, _) in BATCH_CASES.items():
        deliver(store, buckets, delivery_id, {"clip.mp4": b"\x00" * 16}, doc)
    deliver(store, buckets, "good", {"clip.mp4": b"\x00" * 16}, manifest())
    new, _ = batch.pending_deliveries(store, buckets)
    result = batch.validate(batch.read_manifests(store, buckets, new), known_streams=list(SPECS))

    assert [r["delivery_id"] for r in result["valid"]] == ["good"]
    assert set(result["invalid"]) == set(BATCH_CASES)
    for delivery_id, (_, expected) in BATCH_CASES.items():
        reasons = "\n".join(result["invalid"][delivery_id])
        for fragment in expected:
            assert fragment in reasons, f"{delivery_id}: {fragment!r} not in the reasons:\n{reasons}"


# ---------------------------------------------------------------- caption files: rejected per locale


def srt_time(s: float) -> str:
    ms = round(s * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def srt(cues: list[tuple[float, float, str]]) -> bytes:
    blocks = (f"{i}\n{srt_time(a)} --> {srt_time(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))
    return "".join(blocks).encode()


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE tt [\n  <!ENTITY lol "lol">\n'
    + "".join(f'  <!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">\n' for i in range(1, 10))
    + ']>\n<tt xmlns="http://www.w3.org/ns/ttml"><body><div><p begin="0.5s" end="1.5s">&lol9;</p></div></body></tt>\n'
).encode()

CAPTION_CASES = [  # (bad file, a maker of its bytes, reason fragments)
    pytest.param(
        "big.srt",
        lambda: srt([(0.5, 1.5, "Hello")]) + b"\n" * (50 * 1024 * 1024),
        ["big.srt: file is 52,428,", "bytes, above the 10,485,760-byte limit for caption files"],
        id="50-MB",
    ),
    pytest.param(
        "million.srt",
        lambda: srt([(i / 1e6, (i + 1) / 1e6, "x") for i in range(1_000_000)]),
        ["million.srt: file is", "above the 10,485,760-byte limit"],
        id="a-million-cues",
    ),
    pytest.param(
        "laughs.ttml",
        lambda: BILLION_LAUGHS,
        ["laughs.ttml: line 3: declares the XML entity 'lol': entity declarations are not allowed in TTML"],
        id="ttml-billion-laughs",
    ),
    pytest.param(
        "bomb.srt",
        lambda: srt([(0.1, 1.9, f"line {i}") for i in range(5000)]),
        ["bomb.srt: cue 11 (line 42): 11 cues on screen at once at 00:00:00.100 (max 10"],
        id="srt-overlapping-cue-bomb",
    ),
    pytest.param(
        "line.srt",
        lambda: b"1\n00:00:00,500 --> 00:00:01,500\n" + b"{" * 5_000_000 + b"\n",
        ["line.srt: cue 1 (line 2): cue has 5,000,000 characters (max 1,000): too long to be a caption"],
        id="srt-one-gigantic-line",
    ),
    pytest.param(
        "hours.vtt",
        lambda: b"WEBVTT\n\n" + b"9" * 5000 + b":00:00.000 --> 00:00:01.000\nx\n",
        ["hours.vtt: cue 1 (line 3): unparseable timestamp '99999"],
        id="vtt-5000-digit-hours",
    ),
]


@pytest.mark.parametrize("name, make, expected", CAPTION_CASES)
def test_a_bad_caption_file_rejects_its_locale_and_the_title_publishes_without_it(
    s3, media_files, tmp_path, name, make, expected
):
    store, buckets = s3
    data = make()
    good = srt([(0.5, 1.5, "Hello")])
    doc = manifest(captions=[{"locale": "de-DE", "file": name}, {"locale": "en-US", "file": "en.srt"}])
    prefix = deliver(store, buckets, "bad-captions", {"clip.mp4": media_files["clip.mp4"], name: data, "en.srt": good},
                     doc)  # fmt: skip
    ingested = flow.ingest(store, buckets, delivery="bad-captions", spec=SPEC, known_streams=set(SPECS), run_id=RUN_ID)
    assert ingested["status"] == "accepted", ingested["reasons"]

    def run_ffmpeg(argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    started = time.monotonic()
    bad, ok = (flow.localize_locale(store, buckets, ingested=ingested, item=item, spec=SPEC, run_id=RUN_ID,
                                    run_ffmpeg=run_ffmpeg) for item in ingested["locales"])  # fmt: skip
    assert time.monotonic() - started < MAX_S
    assert (bad["locale"], bad["status"], ok["status"]) == ("de-DE", "rejected", "ok")
    reasons = "\n".join(bad["reasons"])
    for fragment in expected:
        assert fragment in reasons, f"{fragment!r} not in the reasons:\n{reasons}"
    assert len(reasons) < 2000, "a reason is a message, not a copy of the file"

    transcoded = flow.transcode(store, buckets, ingested=ingested, spec=SPEC, run_id=RUN_ID, run_ffmpeg=run_ffmpeg,
                                workdir=str(tmp_path))  # fmt: skip
    published = flow.publish(store, buckets, ingested=ingested, transcoded=transcoded, localized=[bad, ok])
    assert [p["channel"] for p in published["published"]] == ["web"]
    assert published["locales"]["en-US"] == "published"
    assert published["locales"]["de-DE"].startswith(f"rejected: {name}: ")
    live = set(store.list(buckets.distribution, "web/bad-input/"))
    version = flow.published_state(store, buckets, "bad-input")["version"]
    assert f"web/bad-input/{version}/subs_en-US/index.m3u8" in live
    assert not [k for k in live if "de-DE" in k], "nothing of the rejected locale is published"
    assert "de-DE" not in store.get_bytes(buckets.distribution, "web/bad-input/master.m3u8").decode()
    assert objects(store, buckets.landing, prefix)[name] == data, "the original stays as delivered"


def test_overlapping_cues_cannot_multiply_into_every_segment_of_a_long_programme(tmp_path):
    """5,000 cues shown together over an hour would be 4.5 million cue copies in 900 HLS segments."""
    src = tmp_path / "bomb.srt"
    src.write_bytes(srt([(0.0, 3599.0, f"line {i}") for i in range(5000)]))
    started = time.monotonic()
    with pytest.raises(captions.CaptionError) as err:
        localize.captions_to_hls(src, tmp_path / "out", locale="de-DE", duration_s=3600.0)
    assert time.monotonic() - started < MAX_S
    assert "bomb.srt: cue 11 (line 42): 11 cues on screen at once at 00:00:00.000 (max 10" in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing written"


def test_the_caption_size_limit_is_configurable(tmp_path, monkeypatch):
    src = tmp_path / "en.srt"
    src.write_bytes(srt([(i, i + 0.5, "Hello") for i in range(100)]))
    assert len(captions.read_captions(src)) == 100
    monkeypatch.setenv("MEDIAFLOW_MAX_CAPTION_BYTES", "1000")
    with pytest.raises(captions.CaptionError) as err:
        captions.read_captions(src)
    assert str(err.value) == (f"en.srt: file is {src.stat().st_size:,} bytes, above the 1,000-byte limit for caption "
                              "files (MEDIAFLOW_MAX_CAPTION_BYTES)")  # fmt: skip
    assert err.value.findings[0].check == "size"
