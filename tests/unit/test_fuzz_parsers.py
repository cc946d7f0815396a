"""Fuzzing the input parsers with hypothesis: a manifest or a caption file, whatever its bytes, gives a result or the
module's own error naming the file (ManifestError: manifest.json; CaptionError: the caption file), never another
exception and never a hang (a deadline per example). Runs are derandomized (the same examples every time) and
bounded, so the file takes well under a minute.
"""

from __future__ import annotations

import json
import re
import struct
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mediaflow import batch, captions, localize
from mediaflow.manifest import KNOWN, Manifest, ManifestError, parse_manifest


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=timedelta(seconds=2), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def mostly(valid, other, one_in: int = 6):
    """`valid`, but one time in `one_in` `other`: wholly random input rarely gets past a parser's first check, so the
    deeper paths are reached with mostly-good input that has a few bad parts."""
    return st.integers(1, one_in).flatmap(lambda n: other if n == one_in else valid)  # hypothesis favours 1


# ---------------------------------------------------------------- manifests

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
names = mostly(st.from_regex(r"\A[A-Za-z0-9_-]{1,12}(/[A-Za-z0-9_.-]{1,12})?\.[a-z0-9]{2,4}\Z"),
               st.one_of(st.text(max_size=24), json_values, st.sampled_from(
                   ["../x", "/etc/passwd", "a/../b", "./a", "a//b", "a;b", "$(id)", "\u2024\u2024/x", "a\u202eb",
                    "\uff41.srt", "a\u200bb", "a\x00b", "x" * 300])))  # fmt: skip
sidecar = mostly(st.fixed_dictionaries({"locale": mostly(st.sampled_from(["en-US", "es-ES", "fr"]), json_values),
                                        "file": names}), json_values)  # fmt: skip
FIELDS = {
    "asset_id": mostly(st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z"), st.one_of(st.text(max_size=70), json_values)),
    "title": mostly(st.text(min_size=1, max_size=20), json_values),
    "value_stream": mostly(st.just("news_clip"), st.one_of(st.just("telenovela"), json_values)),
    "source": mostly(st.fixed_dictionaries({"file": names}, optional={
        "sha256": mostly(st.from_regex(r"\A[0-9a-fA-F]{64}\Z"), json_values)}), json_values),
    "territories": mostly(st.lists(st.sampled_from(["US", "GB", "FR"]), min_size=1, max_size=3),
                          st.one_of(st.lists(st.sampled_from(["us", "", "USA", "US"]), max_size=3), json_values)),
    "channels": mostly(st.lists(st.sampled_from(["web", "social"]), max_size=2), json_values),
    "captions": mostly(st.lists(sidecar, max_size=2), json_values),
    "audio": mostly(st.lists(sidecar, max_size=2), json_values),
    "rating": mostly(st.fixed_dictionaries({"scheme": st.just("MPA"), "value": st.text(max_size=4)}), json_values),
    "delivered_at": mostly(st.sampled_from(["2026-11-28T01:00:00Z", "2026-11-28T01:00:00+01:00", "2026-11-28"]),
                           st.one_of(st.text(max_size=20), json_values)),
    "metadata": mostly(st.dictionaries(st.text(max_size=8), json_values, max_size=3), json_values),
}  # fmt: skip
REQUIRED = ("asset_id", "title", "value_stream", "source", "territories")
manifest_docs = st.fixed_dictionaries(
    {k: v for k, v in FIELDS.items() if k in REQUIRED}, optional={k: v for k, v in FIELDS.items() if k not in REQUIRED}
).flatmap(lambda doc: mostly(st.just(doc), st.one_of(  # now and then a key dropped or an unknown one added
    st.sampled_from(sorted(doc)).map(lambda k: {x: v for x, v in doc.items() if x != k}),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k not in KNOWN), json_values, min_size=1, max_size=2)
    .map(lambda extra: {**doc, **extra}),
)))  # fmt: skip


def check_manifest(raw: bytes | str) -> str:
    try:
        m = parse_manifest(raw, known_streams={"news_clip"})
    except ManifestError as e:
        assert e.problems and all(p.startswith("manifest.json: ") for p in e.problems), e.problems
        return "refused"
    assert isinstance(m, Manifest)
    # what is accepted is safe to use as object keys and local paths
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", m.asset_id) and ".." not in m.asset_id
    for name in m.files():
        assert re.fullmatch(r"[A-Za-z0-9._/-]{1,255}", name) and not name.startswith("/"), name
        assert ".." not in name.split("/"), name
    assert m.delivered_at is None or isinstance(m.delivered_at, str)
    return "accepted"


@fuzz(300)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_manifest_on_arbitrary_bytes(raw):
    event(check_manifest(raw))


@fuzz(600)
@given(manifest_docs)
def test_parse_manifest_and_the_batch_row_on_json_shaped_documents(doc):
    raw = json.dumps(doc).encode()
    event(check_manifest(raw))
    row = batch.manifest_row("d-1", raw)  # the batch's GX suite reads this row: it must always be built
    assert row["delivery_id"] == "d-1" and set(row) == set(batch.COLUMNS)


# ---------------------------------------------------------------- captions, through the localize entry point

DURATION_S = 30.0


def check_captions(data: bytes, name: str) -> str:
    """What localize_locale does with a sidecar: read, QC, write WebVTT and the HLS subtitle rendition."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        src = Path(tmp) / name
        src.write_bytes(data)
        try:
            done = localize.captions_to_hls(src, Path(tmp) / "out", locale="en-US", duration_s=DURATION_S)
        except captions.CaptionError as e:
            assert e.findings and all(f.message.startswith(f"{name}:") for f in e.findings), str(e)
            assert str(e).startswith(f"{name}:")
            return f"rejected: {e.findings[0].check}"
        assert done["cues"] > 0 and (Path(tmp) / "out" / "subs_en-US" / "index.m3u8").exists()
        return "accepted"


EXTENSIONS = [".srt", ".vtt", ".ttml", ".dfxp", ".xml", ".scc", ".stl", ".txt", ""]


@fuzz(300)
@given(st.binary(max_size=2000), st.sampled_from(EXTENSIONS))
def test_caption_readers_on_arbitrary_bytes(data, ext):
    event(check_captions(data, f"fuzz{ext}"))


def clock(ms: int, sep: str, hours: bool = True) -> str:
    h, rest = divmod(ms, 3_600_000)
    text = f"{rest // 60_000:02d}:{rest // 1000 % 60:02d}{sep}{rest % 1000:03d}"
    return f"{h:02d}:{text}" if hours else text


garbage_times = st.one_of(
    st.from_regex(r"\A[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}[,.][0-9]{1,4}\Z"),
    st.text(max_size=14),
    st.sampled_from(["99:99:99,999", "00:00:00,000", "-00:00:01,000", "00:00:0x,500"]),
)
spans_ms = st.tuples(st.integers(0, 28_000), st.integers(1, 4000))  # a cue's start and length, inside the media
cue_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(
    ["<i>", "</i>", "<b>", "</b>", "<u>", "{\\an8}", "{\\i1}", "{\\i0}", "{", "}", "\\N", "&amp;", "&lt;", "<c.yellow>",
     "</c>", "<v Bob>", "-->", "\n", "\n\n", "NOTE", "1", "Hello there"])), min_size=1, max_size=8).map("".join)  # fmt: skip
settings_tokens = st.lists(st.one_of(st.sampled_from(["line:10%", "align:start", "position:20%", "size:50%",
                                                      "region:r1", "vertical:rl", "bogus"]), st.text(max_size=8)),
                           max_size=3).map(" ".join)  # fmt: skip
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])


@st.composite
def srt_vtt_files(draw) -> tuple[bytes, str]:
    vtt = draw(st.booleans())
    sep = "." if vtt else ","
    blocks = ["WEBVTT\n"] if vtt else []
    for n, (start, length) in enumerate(sorted(draw(st.lists(spans_ms, max_size=8))), 1):
        times = [clock(start, sep, hours=not vtt or draw(st.booleans())), clock(start + length, sep)]
        times = [draw(mostly(st.just(t), garbage_times, one_in=25)) for t in times]
        ident = draw(mostly(st.just(str(n)), st.text(max_size=5)))
        cue_settings = draw(settings_tokens) if vtt else ""
        blocks.append(f"{ident}\n{times[0]} --> {times[1]} {cue_settings}\n{draw(cue_text)}\n")
    text = "\n".join(blocks).replace("\n", draw(st.sampled_from(["\n", "\r\n"])))
    return text.encode(draw(encodings), errors="replace"), "fuzz.vtt" if vtt else "fuzz.srt"


@fuzz(400)
@given(srt_vtt_files())
def test_srt_and_webvtt_readers_on_cue_shaped_text(file):
    event(check_captions(*file))


xml_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"))  # what XML 1.0 text may hold
time_values = st.one_of(
    st.from_regex(r"\A[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?\Z"),
    st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,3})?(h|m|s|ms|f|t)\Z"),
    st.text(xml_chars, max_size=10),
)
STYLES = {"tts:fontStyle": ["italic", "normal"], "tts:fontWeight": ["bold", "normal"], "tts:textAlign": ["start", "end",
          "center"], "tts:textDecoration": ["underline"], "xml:space": ["preserve", "default"], "tts:origin": ["10% 80%"],
          "tts:extent": ["80% 20%"], "tts:displayAlign": ["after", "center", "before"]}  # fmt: skip
STYLING = ["tts:fontStyle", "tts:fontWeight", "tts:textDecoration", "tts:textAlign", "xml:space"]
xml_text = st.text(xml_chars, max_size=15).map(escape)


@st.composite
def ttml_documents(draw) -> bytes:
    def attrs(names_: list[str], values=None) -> str:  # values: else the attribute's own, now and then any
        out = ""
        for a in draw(st.lists(st.sampled_from(names_), unique=True, max_size=len(names_))):
            value = draw(
                values if values is not None else mostly(st.sampled_from(STYLES[a]), st.text(xml_chars, max_size=8))
            )
            out += f" {a}={quoteattr(value)}"
        return out

    def timing(start: int, length: int) -> str:
        if draw(mostly(st.just(True), st.just(False))):
            end = draw(st.sampled_from([f' end="{(start + length) / 1000:.3f}s"', f' dur="{length}ms"']))
            return f' begin="{start / 1000:.3f}s"{end}'
        return attrs(["begin", "end", "dur"], time_values)

    def refs() -> str:  # to the style and region in the head, or (now and then) to none
        return attrs(["style", "region"], mostly(st.sampled_from(["s1", "r1"]), st.text(xml_chars, max_size=4)))

    paragraphs = []
    for start, length in draw(st.lists(spans_ms, min_size=1, max_size=5)):
        parts = draw(st.lists(st.one_of(
            xml_text, st.just("<br/>"),
            xml_text.map(lambda t: f"<span{attrs(STYLING)}{refs()}>{t}</span>"),
            spans_ms.map(lambda sl: f"<span{timing(*sl)}>x</span>"),
        ), min_size=1, max_size=4))  # fmt: skip
        paragraphs.append(f"<p{timing(start, length)}{attrs(STYLING)}{refs()}>{''.join(parts)}</p>")
    legacy = ["http://www.w3.org/2006/10/ttaf1", "http://www.w3.org/2006/04/ttaf1", "urn:x"]
    ns = draw(mostly(st.just("http://www.w3.org/ns/ttml"), st.sampled_from(legacy)))
    head = (
        f'<head><styling><style xml:id="s1"{attrs(STYLING[:4])}/></styling><layout><region '
        f'xml:id="r1"{attrs(["tts:origin", "tts:extent", "tts:displayAlign"])}/></layout></head>'
    )
    body_timing = draw(mostly(st.just(""), st.just(attrs(["begin", "end", "dur"], time_values))))
    doc = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<tt xmlns="{ns}" xmlns:tts="{ns}#styling" xml:lang="en">'
        f"{draw(mostly(st.just(head), st.just('')))}<body{body_timing}><div>{''.join(paragraphs)}</div></body></tt>"
    )
    return draw(mostly(st.just(doc), st.integers(0, len(doc)).map(lambda cut: doc[:cut]))).encode()  # or cut short


@fuzz(250)
@given(ttml_documents())
def test_ttml_reader_on_document_shaped_xml(data):
    event(check_captions(data, "fuzz.ttml"))


CONTROL_CODES = ["9420", "942c", "942f", "94ae", "9452", "9425", "9426", "94a7", "9470", "91ae", "1320", "8080"]
TEXT_CODES = ["c8e5", "ecec", "ef80", "d3e5", "e520", "20c1"]
POP_ON = ["9420", "9420", "94ae", "94ae", "9452", "9452", "c8e5", "ecec", "ef80", "942f", "942f"]  # "Hello", shown
CLEAR = ["942c", "942c"]


@st.composite
def scc_files(draw) -> bytes:
    lines = ["Scenarist_SCC V1.0", ""]
    for frame in sorted(draw(st.lists(st.integers(0, 29 * 30), max_size=8))):
        s, f = divmod(frame, 30)
        tc = f"00:{s // 60:02d}:{s % 60:02d}{draw(st.sampled_from([':', ';']))}{f:02d}"
        tc = draw(
            mostly(
                st.just(tc),
                st.one_of(
                    st.text(max_size=12),
                    st.sampled_from(["00:01:00;00", "99:99:99:99"]),
                    st.from_regex(r"\A[0-9]{2}[:;.,][0-9]{2}[:;.,][0-9]{2}[:;.,][0-9]{2}\Z"),
                ),
                one_in=20,
            )
        )
        words = draw(
            mostly(
                st.sampled_from([POP_ON, CLEAR]),
                st.lists(
                    mostly(st.sampled_from(CONTROL_CODES + TEXT_CODES), st.from_regex(r"\A[0-9a-f]{4}\Z")), max_size=10
                ),
            )
        )
        lines += [f"{tc}\t{' '.join(words)}", ""]
    return "\n".join(lines + ["00:00:29:29\t" + " ".join(CLEAR), ""]).encode()


@fuzz(250)
@given(scc_files())
def test_scc_reader_on_timecoded_lines(data):
    event(check_captions(data, "fuzz.scc"))


def gsi(tnb: int, dfc: bytes) -> bytes:
    """An EBU-STL GSI block: 1024 bytes of ASCII fields (code page, disk format code, ..., subtitle counts)."""
    fields = [(b"850", 3), (dfc, 8), (b"1", 1), (b"00", 2), (b"09", 2), *[(b"", 32)] * 6, (b"", 16),
              (b"260101", 6), (b"260101", 6), (b"00", 2), (b"%05d" % tnb, 5), (b"%05d" % tnb, 5), (b"001", 3),
              (b"40", 2), (b"23", 2), (b"1", 1), (b"00000000", 8), (b"00000000", 8), (b"1", 1), (b"1", 1),
              (b"GBR", 3), *[(b"", 32)] * 3, (b"", 75), (b"", 576)]  # fmt: skip
    return b"".join(value.ljust(size, b" ") for value, size in fields)


def timecode(ms: int) -> tuple[int, int, int, int]:
    return (0, ms // 60_000, ms // 1000 % 60, ms % 1000 // 40)  # 25 fps frames


teletext = st.one_of(
    st.binary(max_size=112),
    st.lists(
        st.sampled_from([b"\x0d", b"\x0b\x0b", b"\x0a\x0a", b"\x8a", b"Hola", b"Caf\xc2e", b"\x80", b"\x1f"]),
        max_size=12,
    ).map(b"".join),
)


@st.composite
def tti_blocks(draw) -> list[bytes]:
    blocks = []
    for sn, (start, length) in enumerate(sorted(draw(st.lists(spans_ms, max_size=6))), 1):
        tci, tco = timecode(start), timecode(start + length)
        tci, tco = (draw(mostly(st.just(t), st.tuples(*[st.integers(0, 99)] * 4), one_in=25)) for t in (tci, tco))
        ebn = draw(mostly(st.just(0xFF), st.sampled_from([0xFE, 0x00, 0xF0]), one_in=10))
        tf = draw(teletext)[:112].ljust(112, b"\x8f")
        blocks.append(struct.pack("<BHBBBBBBBBBBBBB112s", 0, sn, ebn, draw(mostly(st.just(0), st.integers(0, 3))),
                                  *tci, *tco, draw(st.integers(0, 255)), draw(st.integers(0, 3)), 0, tf))  # fmt: skip
    return blocks


@fuzz(250)
@given(
    tti_blocks(),
    st.sampled_from([b"STL25.01", b"STL30.01", b"STL23.01"]),
    mostly(st.just(b""), st.binary(max_size=130)),
)
def test_ebu_stl_reader_on_gsi_and_tti_blocks(blocks, dfc, tail):
    event(check_captions(gsi(len(blocks), dfc) + b"".join(blocks) + tail, "fuzz.stl"))


# ---------------------------------------------------------------- hostile shapes found while hardening

HOSTILE = [  # (file, bytes): each parsed to a result or a CaptionError, fast; quadratic code took minutes
    ("nested.vtt", b"WEBVTT\n\n00:00.500 --> 00:01.500\nx" + b"<i><b>" * 200_000 + b"</b></i>" * 200_000 + b"\n"),
    ("braces.srt", b"1\n00:00:00,500 --> 00:00:01,500\n" + b"{\\" * 500_000 + b"\n"),
    ("overrides.srt", b"1\n00:00:00,500 --> 00:00:01,500\n{" + b"\\an1" * 500_000 + b"\n"),
    ("blank-head.srt", b"\n" * 8000 + b"x"),
    ("hours.vtt", b"WEBVTT\n\n" + b"9" * 5000 + b":00:00.000 --> 00:00:01.000\nx\n"),
]


@pytest.mark.parametrize("name, data", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_shapes_are_read_in_bounded_time(name, data):
    # a bound on the work (CPU seconds of this process), not on the wall clock: a busy machine cannot fail it, a
    # quadratic or exponential reader does (minutes)
    started = time.process_time()
    check_captions(data, name)
    assert time.process_time() - started < 10
