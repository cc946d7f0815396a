"""Captions: vendor sidecars in five formats and several encodings -> cues -> QC -> WebVTT / HLS subtitle segments.

Every fixture is a real-world-like file built here from Python: SRT/WebVTT/TTML as text in the encoding a vendor
would use, SCC as CEA-608 byte pairs with odd parity, EBU-STL as a binary GSI block plus TTI blocks.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import m3u8
import pytest

from mediaflow.captions import (
    FORMATS,
    CaptionError,
    Cue,
    decode_text,
    detect_format,
    load_captions,
    qc,
    read_captions,
    segment_webvtt,
    to_webvtt,
)

# ------------------------------------------------------------------------------------------- fixture builders

SRT_ES = (
    "1\n"
    "00:00:01,000 --> 00:00:03,500\n"
    "¿Dónde está el niño?\n"
    "\n"
    "2\n"
    "00:00:04,000 --> 00:00:06,000\n"
    "<i>Canción de café</i>\n"
    "\n"
)


def write(tmp_path: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return p


def srt(*cues: tuple[str, str]) -> str:
    """SRT text from (timing line, text) pairs, numbered from 1, CRLF line ends as most vendor tools write."""
    blocks = [
        f"{n}\r\n{timing}\r\n{text.replace(chr(10), chr(13) + chr(10))}\r\n" for n, (timing, text) in enumerate(cues, 1)
    ]
    return "\r\n".join(blocks)


TTML = """<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:tts="http://www.w3.org/ns/ttml#styling"
    xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:tickRate="10000000" xml:lang="es">
  <head>
    <styling>
      <style xml:id="italic" tts:fontStyle="italic"/>
      <style xml:id="bold" tts:fontWeight="bold"/>
    </styling>
    <layout>
      <region xml:id="top" tts:origin="10% 5%" tts:extent="80% 20%" tts:displayAlign="before"/>
      <region xml:id="bottom" tts:origin="10% 70%" tts:extent="80% 20%" tts:displayAlign="after"/>
    </layout>
  </head>
  <body region="bottom">
    <div>
      <p begin="00:00:01.000" end="00:00:03.500">
        ¿Dónde está<br/>el <span style="italic">niño</span>?
      </p>
      <p begin="40000000t" end="60000000t" region="top"><span style="bold">Canción</span> de café</p>
      <p begin="7s" dur="1.5s">Tom &amp; Jerry</p>
    </div>
  </body>
</tt>
"""

# pre-2010 DFXP as many archives still deliver it (ttaf1 namespaces)
DFXP_LEGACY = """<?xml version="1.0" encoding="utf-8"?>
<tt xml:lang="en" xmlns="http://www.w3.org/2006/10/ttaf1" xmlns:tts="http://www.w3.org/2006/10/ttaf1#style">
  <head><styling><style id="s1" tts:fontStyle="italic"/></styling></head>
  <body>
    <div>
      <p begin="00:00:02.000" end="00:00:04.000">Legacy <span style="s1">DFXP</span> caption</p>
    </div>
  </body>
</tt>
"""


def odd_parity(b: int) -> int:
    """CEA-608 bytes carry odd parity in bit 7."""
    return b if bin(b).count("1") % 2 else b | 0x80


def cea608_text(text: str) -> list[str]:
    """Basic North American character set, two characters per word, odd parity, padded with 0x80 (parity NUL)."""
    bs = [odd_parity(ord(ch)) for ch in text]
    if len(bs) % 2:
        bs.append(0x80)
    return [f"{bs[i]:02x}{bs[i + 1]:02x}" for i in range(0, len(bs), 2)]


def pop_on(timecode: str, text: str, pac: str = "9452") -> str:
    """RCL (resume caption loading), ENM (erase non-displayed memory), PAC row 14, text, EOC (end of caption,
    swap memories = show). Control codes are doubled, as real encoders send them for redundancy."""
    words = ["9420", "9420", "94ae", "94ae", pac, pac, *cea608_text(text), "942f", "942f"]
    return f"{timecode}\t{' '.join(words)}"


def scc_file() -> str:
    return "\r\n".join(
        [
            "Scenarist_SCC V1.0",
            "",
            pop_on("00:00:01:00", "HELLO WORLD"),
            "",
            "00:00:03:00\t942c 942c",  # EDM: erase displayed memory (clears the caption)
            "",
            pop_on("00:00:04:00", "GOOD NIGHT"),
            "",
            "00:00:06:00\t942c 942c",
            "",
        ]
    )


def gsi_block(tnb: int, *, dfc: bytes = b"STL25.01", dsc: bytes = b"1", tcp: bytes = b"00000000") -> bytes:
    """EBU Tech 3264 General Subtitle Information block: 1024 bytes, all ASCII fields."""
    fields = [
        (b"850", 3),  # CPN code page number
        (dfc, 8),  # DFC disk format code (frame rate)
        (dsc, 1),  # DSC display standard: '1' = level-1 teletext
        (b"00", 2),  # CCT character code table: Latin (ISO 6937)
        (b"0A", 2),  # LC language code: Spanish
        (b"Programa de prueba", 32),  # OPT original programme title
        (b"Episodio 1", 32),  # OET
        (b"", 32),
        (b"", 32),
        (b"", 32),
        (b"", 32),  # TPT TET TN TCD
        (b"", 16),  # SLR
        (b"250101", 6),
        (b"250101", 6),
        (b"00", 2),  # CD RD RN
        (b"%05d" % tnb, 5),
        (b"%05d" % tnb, 5),
        (b"001", 3),  # TNB TNS TNG
        (b"40", 2),
        (b"23", 2),  # MNC MNR
        (b"1", 1),  # TCS time code status: intended for use
        (tcp, 8),
        (tcp, 8),  # TCP programme start, TCF first in-cue
        (b"1", 1),
        (b"1", 1),  # TND TSN
        (b"ESP", 3),  # CO country of origin
        (b"", 32),
        (b"", 32),
        (b"", 32),  # PUB EN ECD
        (b"", 75),  # spare
        (b"", 576),  # UDA
    ]
    out = b"".join(v.ljust(n, b" ") for v, n in fields)
    assert len(out) == 1024
    return out


def tti_block(
    sn: int, tci: tuple[int, int, int, int], tco: tuple[int, int, int, int], tf: bytes, *, vp: int = 20, jc: int = 2
) -> bytes:
    """Text and Timing Information block: 128 bytes; EBN 0xFF = last block of the subtitle, CS 0 = not cumulative,
    TF is 112 bytes padded with 0x8F (unused space)."""
    assert len(tf) <= 112
    return struct.pack("<BHBBBBBBBBBBBBB112s", 0, sn, 0xFF, 0, *tci, *tco, vp, jc, 0, tf.ljust(112, b"\x8f"))


def teletext_lines(*lines: bytes) -> bytes:
    """Teletext subtitle TF: double height (0x0D), start box (0x0B 0x0B), text, end box (0x0A 0x0A), CR/LF 0x8A."""
    return b"\x8a\x8a".join(b"\x0d\x0b\x0b" + ln + b"\x0a\x0a" for ln in lines)


def stl_file(tcp: bytes = b"00000000", hour: int = 0) -> bytes:
    # ISO 6937: accents are non-spacing prefixes, 0xC2 = acute ("Caf" 0xC2 "e" = "Café")
    subs = [
        tti_block(1, (hour, 0, 1, 0), (hour, 0, 3, 12), teletext_lines(b"Hola", b"Caf\xc2e con leche")),
        tti_block(2, (hour, 0, 4, 0), (hour, 0, 6, 0), teletext_lines(b"Adi\xc2os")),
    ]
    return gsi_block(len(subs), tcp=tcp) + b"".join(subs)


VTT_STYLED = """WEBVTT - vendor delivery
Kind: captions
Language: es

STYLE
::cue {
  color: yellow;
  background-color: rgba(0, 0, 0, 0.8);
}

NOTE this note must not end up in any cue

intro
00:00:01.000 --> 00:00:02.500 line:10% position:20% align:start
<i>Arriba</i> y <b>a la izquierda</b>

2
00:00:03.000 --> 00:00:05.000
<v Narrador><c.yellow>Tom &amp; Jerry</c></v>
"""


# ------------------------------------------------------------------------------------------- encodings


def test_windows_1252_srt_keeps_its_accents_in_webvtt(tmp_path):
    path = write(tmp_path, "es.srt", SRT_ES, encoding="cp1252")
    assert "ñ".encode("cp1252") in path.read_bytes()  # really a single-byte file
    vtt = to_webvtt(read_captions(path))
    assert "¿Dónde está el niño?" in vtt
    assert "<i>Canción de café</i>" in vtt


def test_decode_text_gets_short_western_text_right_even_without_a_language_hint():
    # charset-normalizer alone scores cp1250 and cp1252 equal here and would give "nińo"
    assert decode_text("Canción, niño, café".encode("cp1252"), "episode.srt") == "Canción, niño, café"
    assert decode_text("Canción, niño, café".encode("latin-1"), "es.srt") == "Canción, niño, café"


def test_decode_text_uses_the_language_in_the_file_name_for_central_european_files():
    text = "Zażółć gęślą jaźń. Cześć, jak się masz?"
    assert decode_text(text.encode("cp1250"), "show.pl.srt") == text


@pytest.mark.parametrize(
    "encoding, bom",
    [
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-8", b"\xef\xbb\xbf"),
    ],
)
def test_srt_with_byte_order_mark_is_parsed(tmp_path, encoding, bom):
    path = write(
        tmp_path,
        "es.srt",
        bom
        + srt(
            ("00:00:01,000 --> 00:00:03,500", "¿Dónde está el niño?"),
            ("00:00:04,000 --> 00:00:06,000", "Canción de café"),
        ).encode(encoding),
    )
    cues = read_captions(path)
    assert [(c.index, c.start_s, c.end_s, c.text) for c in cues] == [
        (1, 1.0, 3.5, "¿Dónde está el niño?"),
        (2, 4.0, 6.0, "Canción de café"),
    ]
    assert not cues[0].text.startswith("\ufeff")


# ------------------------------------------------------------------------------------------- formats


def test_ttml_with_regions_styles_and_tick_times(tmp_path):
    cues = read_captions(write(tmp_path, "es.ttml", TTML))
    assert [(c.index, c.start_s, c.end_s) for c in cues] == [(1, 1.0, 3.5), (2, 4.0, 6.0), (3, 7.0, 8.5)]
    assert cues[0].text == "¿Dónde está\nel <i>niño</i>?"  # source indentation collapsed, <br/> is a line break
    assert cues[1].text == "<b>Canción</b> de café"
    assert cues[2].text == "Tom & Jerry"
    assert cues[1].settings == "line:5%"  # region "top": origin 5%, displayAlign before
    assert cues[0].settings == "line:90%,end"  # region "bottom" (inherited from body): bottom edge at 90%
    assert "Tom &amp; Jerry" in to_webvtt(cues)


def test_legacy_dfxp_namespace_is_read(tmp_path):
    cues = read_captions(write(tmp_path, "en.dfxp", DFXP_LEGACY))
    assert [(c.start_s, c.end_s, c.text) for c in cues] == [(2.0, 4.0, "Legacy <i>DFXP</i> caption")]


def test_scc_pop_on_captions_decode_to_text_with_frame_accurate_times(tmp_path):
    path = write(tmp_path, "en.scc", scc_file(), encoding="ascii")
    cues = read_captions(path)
    assert [c.text for c in cues] == ["HELLO WORLD", "GOOD NIGHT"]
    # SCC is 29.97 fps: 00:00:01:00 is 1.001 s; the caption shows at EOC, 12 words (frames) into the line
    assert cues[0].start_s == pytest.approx(1.001 + 12 * 1.001 / 30, abs=0.002)
    assert cues[0].end_s == pytest.approx(3.003, abs=0.002)  # EDM at 00:00:03:00
    assert 4.0 < cues[1].start_s < 4.5 and cues[1].end_s == pytest.approx(6.006, abs=0.002)
    assert cues[0].line == 3  # the SCC line that carries the caption

    # the fixture is real CEA-608: an independent decoder (pycaption) reads the same captions
    import pycaption

    other = pycaption.SCCReader().read(path.read_text()).get_captions("en-US")
    assert [c.get_text() for c in other] == ["HELLO WORLD", "GOOD NIGHT"]


def test_ebu_stl_teletext_file_is_read_via_ttconv(tmp_path):
    cues = read_captions(write(tmp_path, "es.stl", stl_file()))
    assert [(c.index, c.start_s, c.end_s, c.text) for c in cues] == [
        (1, 1.0, 3.48, "Hola\nCafé con leche"),  # 00:00:03:12 at 25 fps = 3.48 s; ISO 6937 accent decoded
        (2, 4.0, 6.0, "Adiós"),
    ]
    assert cues[0].settings.startswith("line:")  # teletext row kept as a line position


def test_ebu_stl_with_programme_start_at_ten_hours_is_made_relative(tmp_path):
    cues, warnings = load_captions(write(tmp_path, "es.stl", stl_file(tcp=b"10000000", hour=10)))
    assert [(c.start_s, c.end_s) for c in cues] == [(1.0, 3.48), (4.0, 6.0)]
    assert any("TCP 10000000" in w.message for w in warnings)


def test_webvtt_positioning_and_styles_survive(tmp_path):
    cues = read_captions(write(tmp_path, "es.vtt", VTT_STYLED))
    assert len(cues) == 2
    assert cues[0].settings == "line:10% position:20% align:start"
    assert cues[0].text == "<i>Arriba</i> y <b>a la izquierda</b>"
    assert cues[1].text == "Tom & Jerry"  # voice/class spans dropped, character reference decoded
    assert cues[1].settings == ""
    assert all("note" not in c.text.lower() and "::cue" not in c.text and "intro" not in c.text for c in cues)
    vtt = to_webvtt(cues)
    assert (
        "00:00:01.000 --> 00:00:02.500 line:10% position:20% align:start\n<i>Arriba</i> y <b>a la izquierda</b>\n"
        in vtt
    )


def test_srt_positioning_tag_becomes_a_webvtt_setting(tmp_path):
    cues = read_captions(
        write(
            tmp_path,
            "fr.srt",
            srt(
                ("00:00:01,000 --> 00:00:02,000", "{\\an8}Texte en haut"),
                ("00:00:03,000 --> 00:00:04,000", "<i>En bas</i>"),
            ),
        )
    )
    assert (cues[0].text, cues[0].settings) == ("Texte en haut", "line:10%")
    assert (cues[1].text, cues[1].settings) == ("<i>En bas</i>", "")


def test_a_cue_whose_last_line_is_a_number_keeps_it(tmp_path):
    # pysubs2 strips a trailing numeric line (it guesses it is the next cue's number); we put it back
    cues = read_captions(write(tmp_path, "en.srt", srt(("00:00:01,000 --> 00:00:03,000", "The answer is\n42"))))
    assert cues[0].text == "The answer is\n42"


def test_windows_1252_ttml_without_an_encoding_declaration_is_read(tmp_path):
    # XML without a declaration must be UTF-8; vendors still send Windows-1252. Decode it like any sidecar.
    data = TTML.replace('<?xml version="1.0" encoding="UTF-8"?>\n', "").encode("cp1252")
    cues = read_captions(write(tmp_path, "es.ttml", data))
    assert cues[1].text == "<b>Canción</b> de café"


def test_srt_cues_without_blank_lines_and_stray_text(tmp_path):
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\nUno\n2\n00:00:03,000 --> 00:00:04,000\nDos\n\n"
        "texto suelto\n\n3\n00:00:05,000 --> 00:00:06,000\nTres\n"
    )
    cues, warnings = load_captions(write(tmp_path, "es.srt", text))
    assert [(c.index, c.text, c.line) for c in cues] == [(1, "Uno", 2), (2, "Dos", 5), (3, "Tres", 11)]
    assert [w.message for w in warnings] == ["es.srt: line 8: text without a timing line ignored: 'texto suelto'"]


# ------------------------------------------------------------------------------------------- broken files


def test_broken_srt_timestamp_names_file_cue_and_line(tmp_path):
    text = srt(("00:00:01,000 --> 00:00:02,000", "Uno"), ("00:00:0x,000 --> 00:00:04,000", "Dos"))
    with pytest.raises(CaptionError) as err:
        read_captions(write(tmp_path, "es.srt", text))
    msg = str(err.value)
    assert msg.startswith("es.srt: cue 2 (line 6): ")
    assert "00:00:0x,000" in msg
    assert [(f.check, f.cue, f.line, f.level) for f in err.value.findings] == [("timing", 2, 6, "error")]


def test_srt_end_before_start_names_file_cue_and_line(tmp_path):
    text = srt(
        ("00:00:01,000 --> 00:00:02,000", "Uno"),
        ("00:00:02,500 --> 00:00:03,000", "Dos"),
        ("00:00:05,000 --> 00:00:03,000", "Tres"),
    )
    with pytest.raises(CaptionError) as err:
        read_captions(write(tmp_path, "es.srt", text))
    assert str(err.value) == "es.srt: cue 3 (line 10): end 00:00:03.000 is before start 00:00:05.000"


def test_webvtt_timestamp_without_three_millisecond_digits_is_an_error(tmp_path):
    with pytest.raises(CaptionError, match=r"de\.vtt: cue 1 \(line 3\): unparseable timestamp '00:01\.5'"):
        read_captions(write(tmp_path, "de.vtt", "WEBVTT\n\n00:01.5 --> 00:02.000\nHallo\n"))


def test_ttml_with_unparseable_begin_names_the_paragraph_and_line(tmp_path):
    bad = TTML.replace('begin="7s"', 'begin="00:00:0x"')
    with pytest.raises(CaptionError) as err:
        read_captions(write(tmp_path, "es.ttml", bad))
    assert str(err.value).startswith('es.ttml: cue 3 (line 20): unparseable begin="00:00:0x"')


def test_ttml_paragraph_ending_before_it_begins_is_an_error(tmp_path):
    bad = TTML.replace('begin="40000000t" end="60000000t"', 'begin="6s" end="4s"')
    with pytest.raises(
        CaptionError, match=r"es\.ttml: cue 2 \(line 19\): end 00:00:04\.000 is before start 00:00:06\.000"
    ):
        read_captions(write(tmp_path, "es.ttml", bad))


def test_ttml_paragraphs_lost_to_div_timing_are_an_error_not_silence(tmp_path):
    # ttconv's implicit-duration arithmetic for an offset <div> without end/dur prunes its paragraphs
    bad = TTML.replace("<div>", '<div begin="10s">')
    with pytest.raises(CaptionError, match=r"es\.ttml: line 16: 3 of 3 <p> paragraphs are never active"):
        read_captions(write(tmp_path, "es.ttml", bad))


def test_scc_line_with_broken_timecode_names_the_line(tmp_path):
    bad = scc_file().replace("00:00:04:00", "00:00:0x:00")
    with pytest.raises(CaptionError, match=r"en\.scc: line 7: malformed SCC line"):
        read_captions(write(tmp_path, "en.scc", bad))


def test_stl_subtitle_ending_before_it_starts_names_the_subtitle(tmp_path):
    data = (
        gsi_block(2)
        + tti_block(1, (0, 0, 1, 0), (0, 0, 2, 0), teletext_lines(b"Uno"))
        + tti_block(2, (0, 0, 5, 0), (0, 0, 4, 0), teletext_lines(b"Dos"))
    )
    with pytest.raises(CaptionError) as err:
        read_captions(write(tmp_path, "es.stl", data))
    assert (
        str(err.value)
        == "es.stl: cue 2: subtitle SN 2, TTI block 2: time out 00:00:04:00 is not after time in 00:00:05:00"
    )


@pytest.mark.parametrize(
    "name, data",
    [
        ("es.srt", b""),
        ("es.srt", b"  \r\n\r\n\t \n"),
        ("es.vtt", "\ufeff \n\n".encode("utf-16-le")),
        ("es.stl", b""),
    ],
)
def test_empty_or_blank_file_is_an_error_naming_the_file(tmp_path, name, data):
    with pytest.raises(CaptionError) as err:
        read_captions(write(tmp_path, name, data))
    assert str(err.value).startswith(f"{name}: file is empty")
    assert err.value.findings[0].check == "empty"


def test_file_with_no_cues_is_an_error(tmp_path):
    with pytest.raises(CaptionError, match=r"es\.vtt: no cues found"):
        read_captions(write(tmp_path, "es.vtt", "WEBVTT\n\nNOTE nothing here yet\n"))


# ------------------------------------------------------------------------------------------- QC


def test_overlapping_cues_are_a_warning_naming_both_cues(tmp_path):
    path = write(
        tmp_path, "es.srt", srt(("00:00:01,000 --> 00:00:03,000", "Uno"), ("00:00:02,500 --> 00:00:04,000", "Dos"))
    )
    findings = qc(read_captions(path), file="es.srt", media_duration_s=10)
    assert [(f.level, f.check, f.cue) for f in findings] == [("warning", "overlap", 2)]
    assert findings[0].message == "es.srt: cue 2 (line 6): starts at 00:00:02.500, before cue 1 ends (00:00:03.000)"


def test_fast_long_and_late_cues_are_flagged(tmp_path):
    sixty = "Este es un subtítulo demasiado largo para una sola línea, sí"
    assert len(sixty) == 60
    path = write(
        tmp_path,
        "es.srt",
        srt(
            ("00:00:01,000 --> 00:00:04,000", "Hola"),  # fine
            ("00:00:05,000 --> 00:00:06,000", "Esto se lee demasiado rápido, amigo"),  # 35 chars in 1 s
            ("00:00:07,000 --> 00:00:12,000", sixty),  # 12 cps, but one 60-character line
            ("00:00:20,000 --> 00:00:23,000", "Más allá del final"),  # media is 20 s long
            ("00:00:19,000 --> 00:00:20,400", "Dentro del margen"),  # ends 0.4 s late: within tolerance
        ),
    )
    findings = qc(read_captions(path), file="es.srt", media_duration_s=20.0)
    got = {(f.check, f.cue, f.level) for f in findings}
    assert ("reading_speed", 2, "warning") in got
    assert ("line_length", 3, "warning") in got
    assert ("duration", 4, "error") in got
    assert not [f for f in findings if f.cue in (1, 5) and f.check != "overlap"]
    speed = next(f for f in findings if f.check == "reading_speed")
    assert speed.message.startswith("es.srt: cue 2 (line 6): reading speed 35.0 characters/s is above 20")
    length = next(f for f in findings if f.check == "line_length")
    assert "cue 3" in length.message and "60 characters (max 42)" in length.message
    late = next(f for f in findings if f.check == "duration")
    assert (
        late.message
        == "es.srt: cue 4 (line 14): starts at 00:00:20.000, at or after the end of the media (00:00:20.000)"
    )


def test_reading_speed_ignores_tags_and_newlines():
    cue = Cue(1, 0.0, 1.0, "<i>" + "a" * 10 + "</i>\n" + "b" * 10)  # 20 visible characters in 1 s: exactly the limit
    assert qc([cue], file="x.vtt", media_duration_s=None) == []
    assert [f.check for f in qc([cue], file="x.vtt", media_duration_s=None, max_cps=19)] == ["reading_speed"]


def test_cue_ending_past_the_media_and_inverted_cue_are_errors():
    cues = [Cue(1, 8.0, 11.0, "tarde"), Cue(2, 9.0, 8.5, "al revés")]
    findings = qc(cues, file="es.vtt", media_duration_s=10.0)
    errors = [(f.check, f.cue) for f in findings if f.level == "error"]
    assert errors == [("duration", 1), ("timing", 2)]
    assert all(f.message.startswith(f"es.vtt: cue {f.cue}") for f in findings)


# ------------------------------------------------------------------------------------------- detection


def fixtures(tmp_path: Path) -> dict[str, Path]:
    return {
        "srt": write(tmp_path, "a.srt", SRT_ES, encoding="cp1252"),
        "vtt": write(tmp_path, "a.vtt", VTT_STYLED),
        "ttml": write(tmp_path, "a.ttml", TTML),
        "scc": write(tmp_path, "a.scc", scc_file()),
        "stl": write(tmp_path, "a.stl", stl_file()),
    }


def test_detect_format_reads_the_content_not_the_name(tmp_path):
    files = fixtures(tmp_path)
    assert set(files) == set(FORMATS)
    for fmt, path in files.items():
        assert detect_format(path.name, path.read_bytes()) == fmt
        assert detect_format("delivery.bin", path.read_bytes()) == fmt  # misleading extension
    assert detect_format("x.txt", b"\xff\xfe" + SRT_ES.encode("utf-16-le")) == "srt"
    assert detect_format("legacy.xml", DFXP_LEGACY.encode()) == "ttml"


def test_detect_format_falls_back_to_the_extension_and_rejects_unknown(tmp_path):
    assert detect_format("captions.dfxp", b"garbage") == "ttml"
    with pytest.raises(CaptionError, match=r"notes\.txt: unknown caption format"):
        detect_format("notes.txt", b"just some notes")


# ------------------------------------------------------------------------------------------- output


def cues_over_ten_seconds() -> list[Cue]:
    return [
        Cue(1, 0.5, 2.0, "Uno"),
        Cue(2, 3.5, 4.5, "Dos, a caballo entre segmentos"),
        Cue(3, 6.0, 7.5, "Tres", "line:10%"),
        Cue(4, 8.5, 9.8, "Cuatro & <i>cinco</i>"),
    ]


def test_segment_webvtt_builds_an_hls_subtitle_rendition():
    playlist, segments = segment_webvtt(cues_over_ten_seconds(), segment_s=4, duration_s=10)
    assert [name for name, _ in segments] == ["sub_00000.vtt", "sub_00001.vtt", "sub_00002.vtt"]
    for _, text in segments:
        assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n")
    body = {name: text for name, text in segments}
    assert "00:00:03.500 --> 00:00:04.500" in body["sub_00000.vtt"]
    assert "00:00:03.500 --> 00:00:04.500" in body["sub_00001.vtt"]
    assert "Uno" in body["sub_00000.vtt"] and "Uno" not in body["sub_00001.vtt"]
    assert "00:00:06.000 --> 00:00:07.500 line:10%" in body["sub_00001.vtt"]
    assert "Cuatro &amp; <i>cinco</i>" in body["sub_00002.vtt"] and "Dos" not in body["sub_00002.vtt"]

    parsed = m3u8.loads(playlist)
    assert parsed.target_duration == 4
    assert parsed.playlist_type == "vod" and parsed.is_endlist and parsed.media_sequence == 0
    assert [s.uri for s in parsed.segments] == ["sub_00000.vtt", "sub_00001.vtt", "sub_00002.vtt"]
    assert [s.duration for s in parsed.segments] == [4.0, 4.0, 2.0]
    assert "#EXT-X-VERSION:6" in playlist


def test_segment_webvtt_writes_every_segment_even_without_cues():
    playlist, segments = segment_webvtt([Cue(1, 1.0, 2.0, "Solo al principio")], segment_s=6, duration_s=13)
    assert len(segments) == 3 and len(m3u8.loads(playlist).segments) == 3
    assert segments[2][1] == "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"


def test_webvtt_round_trip_gives_the_same_cues(tmp_path):
    original = read_captions(write(tmp_path, "es.ttml", TTML)) + cues_over_ten_seconds()[3:]
    original = [
        Cue(i, c.start_s + (10 if i == 4 else 0), c.end_s + (10 if i == 4 else 0), c.text, c.settings)
        for i, c in enumerate(original, 1)
    ]
    path = write(tmp_path, "es.vtt", to_webvtt(original))
    assert read_captions(path) == original


def test_ffmpeg_accepts_our_webvtt(tmp_path):
    vtt = write(tmp_path, "es.vtt", to_webvtt(read_captions(write(tmp_path, "es.srt", SRT_ES, encoding="cp1252"))))
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(vtt), "-f", "srt", "-"], capture_output=True, check=True)
    text = out.stdout.decode("utf-8")
    assert "00:00:01,000 --> 00:00:03,500" in text and "¿Dónde está el niño?" in text


def test_ttml_declaring_an_unknown_encoding_is_rejected_with_the_reason_not_a_crash(tmp_path):
    """expat raises LookupError for an encoding Python does not know: that is bad input (the locale is rejected
    with its reason), never a failed task."""
    path = tmp_path / "es.ttml"
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-3"?>\n' + TTML.split("?>", 1)[-1].lstrip().encode())
    with pytest.raises(CaptionError, match=r"es\.ttml: .*unknown encoding"):
        read_captions(path)
