"""Compliance: rights windows, loudness (BS.1770 / R128), automated QC and metadata quality (GX suite).

Media tests generate real, short clips with ffmpeg's lavfi sources and measure them with the real filters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import wave
from array import array
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from ffargv import outputs

from mediaflow import loudness, qc
from mediaflow import metadata_quality as mq
from mediaflow.manifest import parse_manifest
from mediaflow.rights import (
    HEADER,
    Avail,
    Decision,
    RightsError,
    decide,
    legal_review_required,
    merge_catalogs,
    parse_catalog,
    to_csv,
    valid_territory,
)

ROOT = Path(__file__).resolve().parents[2]
UTC = UTC


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


# ====================================================================== rights

CATALOG = """\
asset_id,territory,channel,window_start,window_end,exclusive
bbb,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false
bbb,GB,web,2027-01-01T00:00:00Z,2028-01-01T00:00:00Z,false
bbb,FR,web,2025-01-01T00:00:00Z,2026-01-01T00:00:00Z,false
bbb,DE,web,2026-06-01T00:00:00+02:00,2026-12-01T00:00:00+01:00,true
bbb,ES,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,true
bbb,ES,web,2026-03-01T00:00:00Z,2026-09-01T00:00:00Z,false
bbb,IT,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,true
bbb,IT,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,true
bbb,US,ott_partner,2026-01-01T00:00:00Z,2026-07-01T00:00:00Z,false
other,JP,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false
"""
AT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
AVAILS = parse_catalog(CATALOG)


def one(channel: str, territory: str, at: datetime = AT, avails=AVAILS) -> Decision:
    [decision] = decide(avails, asset_id="bbb", channels=[channel], territories=[territory], at=at)
    assert (decision.channel, decision.territory) == (channel, territory)
    return decision


@pytest.mark.parametrize(
    "channel, territory, at, publishable, reason",
    [
        ("web", "US", AT, True, "window open until 2027-01-01T00:00:00Z"),
        ("web", "GB", AT, False, "window not open yet (opens 2027-01-01T00:00:00Z)"),
        ("web", "FR", AT, False, "window closed (ended 2026-01-01T00:00:00Z)"),
        # boundaries: window_start is inside the window, window_end is not
        ("web", "US", datetime(2026, 1, 1, tzinfo=UTC), True, "window open until 2027-01-01T00:00:00Z"),
        ("web", "US", datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), True, "window open until"),
        ("web", "US", datetime(2027, 1, 1, tzinfo=UTC), False, "window closed (ended 2027-01-01T00:00:00Z)"),
        (
            "web",
            "US",
            datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
            False,
            "window not open yet (opens 2026-01-01T00:00:00Z)",
        ),
        ("web", "GB", datetime(2027, 1, 1, tzinfo=UTC), True, "window open until 2028-01-01T00:00:00Z"),
        # the same instant written with an offset is the same instant
        ("web", "US", datetime(2027, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), False, "window closed"),
        # offsets in the catalog: DE opens 2026-05-31T22:00Z and ends 2026-11-30T23:00Z
        ("web", "DE", datetime(2026, 5, 31, 22, 0, tzinfo=UTC), True, "window open until 2026-11-30T23:00:00Z"),
        (
            "web",
            "DE",
            datetime(2026, 5, 31, 21, 59, 59, tzinfo=UTC),
            False,
            "window not open yet (opens 2026-05-31T22:00:00Z)",
        ),
        ("web", "DE", datetime(2026, 11, 30, 23, 0, tzinfo=UTC), False, "window closed (ended 2026-11-30T23:00:00Z)"),
        # no row at all: for the territory, for the channel, or (JP) only for another asset
        ("web", "JP", AT, False, "no avail for web/JP"),
        ("social", "US", AT, False, "no avail for social/US"),
        ("ott_partner", "US", AT, True, "window open until 2026-07-01T00:00:00Z"),
        ("ott_partner", "US", datetime(2026, 7, 1, tzinfo=UTC), False, "window closed (ended 2026-07-01T00:00:00Z)"),
        # two identical exclusive rows are one grant, not a conflict
        ("web", "IT", AT, True, "window open until 2027-01-01T00:00:00Z"),
        # ES: the exclusive row (line 6) and a non-exclusive one (line 7) only overlap from March to September
        ("web", "ES", datetime(2026, 2, 1, tzinfo=UTC), True, "window open until 2027-01-01T00:00:00Z"),
        ("web", "ES", datetime(2026, 10, 1, tzinfo=UTC), True, "window open until 2027-01-01T00:00:00Z"),
        # invalid territory codes in the request
        ("web", "XX", AT, False, "territory 'XX' is not an ISO 3166-1 code"),
        ("web", "UK", AT, False, "territory 'UK' is not an ISO 3166-1 code"),
    ],
)
def test_rights_window_rules(channel, territory, at, publishable, reason):
    decision = one(channel, territory, at)
    assert decision.publishable is publishable, decision.reason
    assert decision.reason.startswith(reason), decision.reason


def test_exclusive_conflict_is_not_publishable_and_names_both_lines():
    decision = one("web", "ES")
    assert not decision.publishable
    assert decision.reason.startswith("exclusivity conflict: ")
    assert "avails.csv:6" in decision.reason and "avails.csv:7" in decision.reason


def test_conflict_across_merged_catalogs_names_each_catalog():
    extra = parse_catalog(HEADER_LINE + "bbb,US,web,2026-06-01T00:00:00Z,2026-07-01T00:00:00Z,true\n", name="extra.csv")
    decision = one("web", "US", avails=merge_catalogs(AVAILS, extra))
    assert not decision.publishable
    assert "avails.csv:2" in decision.reason and "extra.csv:2" in decision.reason
    # outside the extra window, the base row alone decides
    assert one("web", "US", datetime(2026, 8, 1, tzinfo=UTC), avails=merge_catalogs(AVAILS, extra)).publishable


def test_decisions_are_channel_major_and_drive_the_legal_review():
    decisions = decide(AVAILS, asset_id="bbb", channels=["web", "ott_partner"], territories=["US", "GB"], at=AT)
    assert [(d.channel, d.territory, d.publishable) for d in decisions] == [
        ("web", "US", True),
        ("web", "GB", False),
        ("ott_partner", "US", True),
        ("ott_partner", "GB", False),
    ]
    assert legal_review_required(decisions)
    cleared = decide(AVAILS, asset_id="bbb", channels=["web"], territories=["US", "IT"], at=AT)
    assert all(d.publishable for d in cleared) and not legal_review_required(cleared)
    assert legal_review_required([]), "nothing cleared is not a clearance"
    # an asset with no rows at all is published nowhere
    nothing = decide(AVAILS, asset_id="unknown", channels=["web"], territories=["US"], at=AT)
    assert nothing == [Decision("web", "US", False, "no avail for web/US")]


def test_decide_needs_an_aware_instant():
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(AVAILS, asset_id="bbb", channels=["web"], territories=["US"], at=datetime(2026, 6, 1))


def test_catalog_rows_are_typed():
    de = next(a for a in AVAILS if a.territory == "DE")
    assert de == Avail("bbb", "DE", "web", datetime(2026, 5, 31, 22, tzinfo=UTC),
                       datetime(2026, 11, 30, 23, tzinfo=UTC), True, 5)  # fmt: skip
    assert [a.line for a in AVAILS] == list(range(2, 12))
    assert valid_territory("GB") and not valid_territory("UK") and not valid_territory("gb")


def test_seed_catalog_parses_and_closes_one_sample_window():
    """The seed the stack starts with: valid rows, and the closed GB window `make run` demonstrates."""
    text = (ROOT / "include/rights/avails.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(HEADER)
    avails = parse_catalog(text)
    at = datetime(2026, 11, 28, tzinfo=UTC)
    closed = [d for d in decide(avails, asset_id="sample-rights-closed-gb", channels=["web"], territories=["US", "GB"],
                                at=at) if not d.publishable]  # fmt: skip
    assert [(d.territory, "closed" in d.reason) for d in closed] == [("GB", True)]


HEADER_LINE = ",".join(HEADER) + "\n"
GOOD_ROW = "bbb,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false"


@pytest.mark.parametrize(
    "row, field, detail",
    [
        ("bbb,US,web,2026-13-01T00:00:00Z,2027-01-01T00:00:00Z,false", "window_start", "not an ISO 8601 instant"),
        ("bbb,US,web,next tuesday,2027-01-01T00:00:00Z,false", "window_start", "not an ISO 8601 instant"),
        ("bbb,US,web,2026-01-01,2027-01-01T00:00:00Z,false", "window_start", "not an ISO 8601 instant"),
        ("bbb,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00,false", "window_end", "has no timezone"),
        ("bbb,US,web,2027-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "window_end", "must be after window_start"),
        ("bbb,US,web,2027-01-01T00:00:00Z,2026-01-01T00:00:00Z,false", "window_end", "must be after window_start"),
        ("bbb,XX,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "territory", "'XX' is not an ISO 3166-1"),
        ("bbb,UK,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "territory", "'UK' is not an ISO 3166-1"),
        ("bbb,gb,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "territory", "did you mean 'GB'"),
        ("bbb,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,yes", "exclusive", "must be true or false"),
        ("bbb,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,", "exclusive", "must be true or false"),
        ("Bad/ID,US,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "asset_id", "must match"),
        ("bbb,US,Web TV,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false", "channel", "must be a channel name"),
    ],
)
def test_parse_errors_name_file_line_and_field(row, field, detail):
    with pytest.raises(RightsError) as err:
        parse_catalog(HEADER_LINE + GOOD_ROW + "\n" + row + "\n", name="partner.csv")
    [problem] = err.value.problems
    assert problem.startswith(f"partner.csv:3: field '{field}' "), problem
    assert detail in problem


@pytest.mark.parametrize(
    "header, detail",
    [
        ("asset_id,territory,channel,start,end,exclusive", "column 4 is 'start' but must be 'window_start'"),
        ("asset_id,territory,channel,window_start,window_end", "column 6 'exclusive' is missing"),
        ("asset_id,territory,channel,window_start,window_end,exclusive,notes", "unexpected extra column 'notes'"),
        (GOOD_ROW, "column 1 is 'bbb'"),
        ("", "column 1 'asset_id' is missing"),
    ],
)
def test_wrong_header_is_rejected(header, detail):
    with pytest.raises(RightsError, match="^avails.csv:1: field 'header': ") as err:
        parse_catalog(header + "\n" + GOOD_ROW + "\n")
    assert detail in str(err.value)
    with pytest.raises(RightsError, match="^avails.csv:1: field 'header': the catalog is empty"):
        parse_catalog("")


def test_every_bad_row_is_reported_at_once():
    text = HEADER_LINE + GOOD_ROW + "\n\nbbb,XX,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,maybe\nbbb,US,web\n"
    with pytest.raises(RightsError) as err:
        parse_catalog(text, name="avails.csv")
    assert err.value.problems == [
        "avails.csv:4: field 'territory' 'XX' is not an ISO 3166-1 alpha-2 country code",
        "avails.csv:4: field 'exclusive' 'maybe' must be true or false",
        "avails.csv:5: expected 6 fields (asset_id,territory,channel,window_start,window_end,exclusive), got 3",
    ]
    assert isinstance(err.value, ValueError)


def test_merge_keeps_each_grant_once():
    extra_text = HEADER_LINE + GOOD_ROW + "\n" + "bbb,NZ,web,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,false\n"
    merged = merge_catalogs(AVAILS, parse_catalog(extra_text, name="extra.csv"))
    # GOOD_ROW repeats line 2 of the base; the base's two identical IT rows are also one grant
    assert len(merged) == len(AVAILS) - 1 + 1
    assert [a.territory for a in merged].count("US") == 2  # web and ott_partner
    assert merged[-1].territory == "NZ" and merged[-1].catalog == "extra.csv"
    assert merged[0].catalog == "avails.csv", "the first copy wins"
    # the same instant written with another offset is the same value
    shifted = parse_catalog(HEADER_LINE + "bbb,US,web,2026-01-01T01:00:00+01:00,2027-01-01T00:00:00Z,false\n")
    assert merge_catalogs(AVAILS, shifted) == merge_catalogs(AVAILS, [])


def test_to_csv_round_trips():
    text = to_csv(AVAILS)
    assert text.splitlines()[0] == ",".join(HEADER)
    assert "2026-06-01T00:00:00+02:00" in text, "offsets are written as given"
    again = parse_catalog(text)
    assert [a.key for a in again] == [a.key for a in AVAILS]
    assert to_csv(again) == text
    assert parse_catalog(to_csv([])) == []


# ====================================================================== loudness


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("loudness")


SINE_20DBFS = "0.1*sin(2*PI*1000*t)"  # peak 0.1 = -20 dBFS


def synth(path: Path, expr: str, *, seconds: float = 5, codec: str = "pcm_f32le") -> Path:
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc={expr}:s=48000:d={seconds}", "-c:a", codec, str(path))
    return path


def test_mono_1khz_sine_at_minus_20_dbfs_reads_minus_23_lufs(audio_dir):
    measured = loudness.measure(synth(audio_dir / "mono.wav", SINE_20DBFS))
    assert measured["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert measured["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.1)
    assert measured["lra_lu"] == pytest.approx(0.0, abs=0.1)
    assert loudness.check(measured, target_lufs=-23, true_peak_dbtp=-1, name="mono.wav") == []


def test_stereo_1khz_sine_at_minus_20_dbfs_reads_minus_20_lufs(audio_dir):
    measured = loudness.measure(synth(audio_dir / "stereo.wav", f"{SINE_20DBFS}|{SINE_20DBFS}"))
    assert measured["integrated_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert measured["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.1)
    problems = loudness.check(measured, target_lufs=-23, true_peak_dbtp=-1, name="stereo.wav")
    assert problems == ["stereo.wav: loudness -20.0 LUFS, target -23 ± 1 LU"]


def test_stereo_programme_normalised_to_minus_16(audio_dir):
    # decorrelated stereo pink noise (the right channel is delayed 37 ms)
    raw = audio_dir / "pink.wav"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.1:d=6:seed=7", "-filter_complex",
           "[0:a]asplit[l][r];[r]adelay=37[rd];[l][rd]join=inputs=2:channel_layout=stereo",
           "-c:a", "pcm_f32le", str(raw))  # fmt: skip
    before = loudness.measure(raw)
    gain = loudness.gain_to_target_db(before, target_lufs=-16)
    assert abs(gain) > 3, "the raw signal is far from the target"
    normalised = audio_dir / "pink-16.wav"
    ffmpeg("-i", str(raw), "-af", f"volume={gain:.2f}dB", "-c:a", "pcm_f32le", str(normalised))
    after = loudness.measure(normalised)
    assert after["integrated_lufs"] == pytest.approx(-16.0, abs=0.1)
    # a linear gain moves the true peak by the same amount
    assert after["true_peak_dbtp"] == pytest.approx(before["true_peak_dbtp"] + gain, abs=0.2)
    assert after["true_peak_dbtp"] < -1.5
    assert loudness.check(after, target_lufs=-16, true_peak_dbtp=-1.5, name="pink-16.wav") == []
    [problem] = loudness.check(after, target_lufs=-23, true_peak_dbtp=-1, name="pink-16.wav")
    assert problem == "pink-16.wav: loudness -16.0 LUFS, target -23 ± 1 LU"


def test_true_peak_catches_inter_sample_peaks_a_sample_meter_misses(audio_dir):
    # a sine at fs/4 with a 45 degree phase: every sample is at +-0.95*0.707 (-3.4 dBFS), the waveform
    # between them reaches 0.95 (-0.4 dBTP), above a -1 dBTP ceiling.
    path = synth(audio_dir / "isp.wav", "0.95*sin(2*PI*12000*t+PI/4)|0.95*sin(2*PI*12000*t+PI/4)",
                 seconds=3, codec="pcm_s16le")  # fmt: skip
    with wave.open(str(path)) as w:
        samples = array("h", w.readframes(w.getnframes()))
    sample_peak_db = 20 * math.log10(max(abs(s) for s in samples) / 32768)
    assert sample_peak_db == pytest.approx(-3.45, abs=0.1)
    measured = loudness.measure(path)
    assert measured["true_peak_dbtp"] > -1.0
    assert measured["true_peak_dbtp"] > sample_peak_db + 2
    problems = loudness.check(measured, target_lufs=measured["integrated_lufs"], true_peak_dbtp=-1, name="isp.wav")
    assert problems == [f"isp.wav: true peak {measured['true_peak_dbtp']:.1f} dBTP above the -1 dBTP ceiling"]


def test_check_tolerance_and_ceiling_are_inclusive():
    ok = {"integrated_lufs": -22.0, "lra_lu": 3.0, "true_peak_dbtp": -1.0}
    assert loudness.check(ok, target_lufs=-23, true_peak_dbtp=-1, name="a.wav") == []
    loud = {"integrated_lufs": -18.2, "lra_lu": 3.0, "true_peak_dbtp": -0.9}
    assert loudness.check(loud, target_lufs=-23, true_peak_dbtp=-1, tolerance_lu=1.0, name="audio/index.m3u8") == [
        "audio/index.m3u8: loudness -18.2 LUFS, target -23 ± 1 LU",
        "audio/index.m3u8: true peak -0.9 dBTP above the -1 dBTP ceiling",
    ]
    # a figure that fails is never shown rounded onto the limit
    near = {"integrated_lufs": -21.96, "lra_lu": 3.0, "true_peak_dbtp": -0.96}
    assert loudness.check(near, target_lufs=-23, true_peak_dbtp=-1, name="a") == [
        "a: loudness -21.96 LUFS, target -23 ± 1 LU",
        "a: true peak -0.96 dBTP above the -1 dBTP ceiling",
    ]
    silent = {"integrated_lufs": None, "lra_lu": None, "true_peak_dbtp": None}
    [problem] = loudness.check(silent, target_lufs=-16, true_peak_dbtp=-1.5, name="s.wav")
    assert problem == (
        "s.wav: loudness not measurable: nothing above the -70 LUFS absolute gate (digital silence), target -16 ± 1 LU"
    )


def test_measure_argv_is_one_decode_of_the_chosen_stream():
    argv = loudness.measure_argv("/x/in.mov", stream="a:1")
    meter = ["ebur128=framelog=verbose:metadata=1:peak=true", "ametadata=direct=1:file=-:mode=print"]
    assert argv[0] == "ffmpeg" and outputs(argv)["-"]["filters"] == [["input=0:a:1", *meter]]
    assert "metadata=1" in loudness.METER and "file=-" in loudness.METER, "figures as metadata on stdout, not log text"
    assert argv[-3:] == ["-f", "null", "-"]
    downmixed = outputs(loudness.measure_argv("/x/in.mov", chain=loudness.DOWNMIX))["-"]["filters"]
    assert (
        downmixed[0][1:3]
        == [
            "aformat=sample_fmts=fltp",
            "pan=args=stereo|FL=FL+0.7071*FC+0.7071*BL+0.7071*SL|FR=FR+0.7071*FC+0.7071*BR+0.7071*SR",
        ]
        and downmixed[0][3:] == meter
    )


def test_measure_without_audio_names_the_file(audio_dir):
    silent_film = audio_dir / "silent-film.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "libx264", "-preset", "ultrafast", str(silent_film)
    )
    with pytest.raises(ValueError, match=r"^silent-film\.mp4: no audio stream 'a:0'"):
        loudness.measure(silent_film)
    with pytest.raises(ValueError, match=r"^missing\.wav: ffmpeg could not measure loudness"):
        loudness.measure(audio_dir / "missing.wav")


# ====================================================================== QC

CLIP_S = 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """320x240 25 fps + 48 kHz sine, 10 s: a clean clip, and one with black 1-3.5 s, a frozen picture 4.5-7 s,
    silence 2-5 s and 7.5 s to the end; and a 6 s clip frozen from 3 s to the end."""
    d = tmp_path_factory.mktemp("qc")
    src = ["-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={CLIP_S}", "-f", "lavfi", "-i",
           f"sine=f=440:sample_rate=48000:d={CLIP_S}"]  # fmt: skip
    enc = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    clean, bad, frozen_end = d / "clean.mp4", d / "feature.mp4", d / "frozen-end.mp4"
    ffmpeg(*src, *enc, str(clean))
    # Black is drawn with a little noise so it is not also a frozen picture; frames 113-175 repeat frame 112.
    ffmpeg(*src, "-filter_complex",
           "[0:v]split[a][b];[a][b]freezeframes=first=113:last=175:replace=112,"
           "drawbox=t=fill:c=black:enable='between(t,1,3.5)',noise=alls=8:allf=t:enable='between(t,1,3.5)'[v];"
           "[1:a]volume=0:enable='between(t,2,5)+gte(t,7.5)'[a]",
           "-map", "[v]", "-map", "[a]", *enc, str(bad))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6", "-filter_complex",
           "[0:v]split[a][b];[a][b]freezeframes=first=76:last=150:replace=75[v]", "-map", "[v]",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(frozen_end))  # fmt: skip
    return {"clean": clean, "bad": bad, "frozen_end": frozen_end}


def near(found: list[dict], start: float, end: float) -> bool:
    return any(abs(r["start"] - start) <= 1.0 and abs(r["end"] - end) <= 1.0 for r in found)


def test_qc_finds_black_freeze_and_silence(clips):
    found = qc.detect(clips["bad"], duration_s=CLIP_S, has_video=True, has_audio=True)
    assert len(found["black"]) == 1 and near(found["black"], 1.0, 3.5), found
    assert len(found["freeze"]) == 1 and near(found["freeze"], 4.5, 7.0), found
    assert len(found["silence"]) == 2 and near(found["silence"], 2.0, 5.0) and near(found["silence"], 7.5, 10.0), found
    judged = qc.judge(found, duration_s=CLIP_S, name="feature.mp4")
    assert [(f["kind"], f["where"], f["severity"]) for f in judged] == [
        ("black", "mid", "error"),
        ("silence", "mid", "error"),
        ("freeze", "mid", "error"),
        ("silence", "tail", "warning"),
    ], judged
    lines = qc.findings(found, name="feature.mp4", duration_s=CLIP_S)
    assert len(lines) == 3
    assert lines[0].startswith("feature.mp4: black 1.0-3.5 s (2.5 s) mid-programme, limit 2 s"), lines
    assert lines[2].startswith("feature.mp4: freeze ") and lines[2].endswith("mid-programme, limit 2 s")
    tail = judged[-1]["message"]
    assert tail.startswith("feature.mp4: silence 7.5-10.0 s at the tail") and "within the 5 s allowance" in tail


def test_qc_closes_a_freeze_that_runs_to_the_end_at_the_duration(clips):
    found = qc.detect(clips["frozen_end"], duration_s=6.0, has_video=True, has_audio=False)
    assert found["black"] == [] and found["silence"] == []
    [freeze] = found["freeze"]
    assert abs(freeze["start"] - 3.0) <= 1.0 and freeze["end"] == 6.0
    assert freeze["duration"] == pytest.approx(6.0 - freeze["start"])
    [judged] = qc.judge(found, duration_s=6.0, name="end-card.mp4")
    assert (judged["where"], judged["severity"]) == ("tail", "warning"), "a frozen end card is an edit, not a fault"


def test_qc_clean_clip_has_no_findings(clips):
    found = qc.detect(clips["clean"], duration_s=CLIP_S, has_video=True, has_audio=True)
    assert found == {"black": [], "freeze": [], "silence": []}
    assert qc.findings(found, name="clean.mp4", duration_s=CLIP_S) == []


def test_detect_argv_is_one_pass_with_the_thresholds():
    t = qc.Thresholds(
        black_min_s=1.5, black_pixel_th=0.08, freeze_min_s=3, freeze_noise_db=-50, silence_min_s=4, silence_db=-45
    )
    argv = qc.detect_argv("in.mov", has_video=True, has_audio=True, thresholds=t, metadata_dir="/tmp/m")
    assert argv.count("ffmpeg") == 1 and argv[-3:] == ["-f", "null", "-"]
    assert outputs(argv)["-"]["filters"] == [
        ["input=0:v:0", "blackdetect=d=1.5:pix_th=0.08", "freezedetect=d=3:n=-50dB", "metadata=file=/tmp/m/video.meta:mode=print"],
        ["input=0:a:0", "silencedetect=d=4:n=-45dB", "ametadata=file=/tmp/m/audio.meta:mode=print"],
    ]  # fmt: skip
    audio_only = outputs(qc.detect_argv("in.wav", has_video=False, has_audio=True, metadata_dir="/tmp/m"))["-"]
    assert audio_only["filters"] == [["input=0:a:0", "silencedetect=d=1:n=-60dB",
                                      "ametadata=file=/tmp/m/audio.meta:mode=print"]]  # fmt: skip
    picked = qc.detect_argv(
        "in.ts", has_video=True, has_audio=True, metadata_dir="/tmp/m", video_index=3, audio_index=5
    )
    assert [chain[0] for chain in outputs(picked)["-"]["filters"]] == ["input=0:3", "input=0:5"]
    with pytest.raises(ValueError, match="nothing to check"):
        qc.detect_argv("in.bin", has_video=False, has_audio=False, metadata_dir="/tmp/m")


def test_parse_metadata_closes_open_ranges_at_the_duration():
    """The metadata filters' print format (ffmpeg 5.1): a frame header, then key=value lines."""
    text = (
        "frame:50   pts:102400  pts_time:2.13333\nlavfi.silence_start=-0.00133\n"
        "frame:61   pts:124928  pts_time:2.6\nlavfi.silence_end=2.5\nlavfi.silence_duration=2.5\n"
        "frame:0    pts:0       pts_time:0\nlavfi.black_start=0\n"
        "frame:51   pts:26112   pts_time:2.04\nlavfi.black_end=2.04\n"
        "frame:231  pts:118272  pts_time:9.24\nlavfi.freezedetect.freeze_start=7.24\n"
        "frame:375  pts:192000  pts_time:8\nlavfi.silence_start=8\n"
    )
    found = qc.parse_metadata(text, duration_s=12.0)
    assert found == {
        "black": [{"start": 0.0, "end": 2.04, "duration": 2.04}],
        "freeze": [{"start": 7.24, "end": 12.0, "duration": 4.76}],
        "silence": [{"start": 0.0, "end": 2.5, "duration": 2.5}, {"start": 8.0, "end": 12.0, "duration": 4.0}],
    }
    assert qc.parse_metadata(text)["freeze"] == [{"start": 7.24, "end": None, "duration": None}]


def _ranges(**kinds) -> dict:
    return {k: [{"start": a, "end": b, "duration": b - a} for a, b in kinds.get(k, [])] for k in qc.KINDS}


@pytest.mark.parametrize(
    "ranges,where,severity,says",
    [
        (_ranges(silence=[(0.0, 2.2)]), "head", "warning", "silence 0.0-2.2 s at the head, within the 3 s allowance"),
        (_ranges(silence=[(0.0, 6.2)]), "head", "error", "silence 0.0-6.2 s at the head, allowance 3 s"),
        (
            _ranges(black=[(56.5, 60.0)]),
            "tail",
            "warning",
            "black 56.5-60.0 s at the tail (3.5 s), within the 5 s allowance",
        ),
        (_ranges(freeze=[(52.0, 60.0)]), "tail", "error", "freeze 52.0-60.0 s at the tail (8.0 s), allowance 5 s"),
        (_ranges(black=[(51.6, 55.1)]), "mid", "error", "black 51.6-55.1 s (3.5 s) mid-programme, limit 2 s"),
        (
            _ranges(black=[(20.0, 21.2)]),
            "mid",
            "warning",
            "black 20.0-21.2 s (1.2 s) mid-programme, shorter than the 2 s limit",
        ),
        (_ranges(silence=[(0.0, 60.0)]), "whole", "error", "silence 0.0-60.0 s, the whole programme"),
    ],
    ids=["cold-open", "long-head", "fade-out", "long-frozen-end", "black-hole", "short-black", "silent-title"],
)
def test_qc_judges_head_tail_and_mid_programme_ranges(ranges, where, severity, says):
    [finding] = qc.judge(ranges, duration_s=60.0, name="title.mp4")
    assert (finding["where"], finding["severity"]) == (where, severity)
    assert finding["message"] == f"title.mp4: {says}"


def test_qc_allowances_come_from_the_spec():
    strict = qc.Thresholds(head_allowance_s=1, tail_allowance_s=2, black_mid_min_s=5)
    judged = qc.judge(_ranges(silence=[(0.0, 2.2)], black=[(20.0, 24.0), (56.5, 60.0)]), duration_s=60.0,
                      thresholds=strict, name="t.mp4")  # fmt: skip
    assert [(f["where"], f["severity"], f["limit_s"]) for f in judged] == [
        ("head", "error", 1),
        ("mid", "warning", 5),
        ("tail", "error", 2),
    ]


# ====================================================================== metadata quality (GX)

STREAMS = ["series_episode", "news_clip"]
VIDEO_FACTS = {"duration_s": 596.5, "audio_streams": 1,
               "video": {"width": 1920, "height": 1080, "fps": 24.0, "interlaced": False}}  # fmt: skip


def row(asset_id: str, **changes) -> dict:
    manifest = {"asset_id": asset_id, "title": "Big Buck Bunny", "value_stream": "series_episode",
                "territories": ["US", "GB"]}  # fmt: skip
    base = mq.facts_row(manifest, VIDEO_FACTS)
    return {**base, **changes}


BAD_ROWS = {
    "bad asset id": (row("Bad/ID"), "expect_column_values_to_match_regex", "asset_id", "Bad/ID"),
    "unknown stream": (row("bad-stream", value_stream="cooking_show"), "expect_column_values_to_be_in_set",
                       "value_stream", "cooking_show"),
    "no territories": (row("bad-territories", territories="", n_territories=0), "expect_column_values_to_be_between",
                       "n_territories", 0),
    "too short": (row("bad-duration", duration_s=0.2), "expect_column_values_to_be_between", "duration_s", 0.2),
    "slide show": (row("bad-fps", fps=5.0), "expect_column_values_to_be_between", "fps", 5.0),
}  # fmt: skip


@pytest.fixture(scope="module")
def gx_summary() -> dict:
    audio_only = mq.facts_row(
        {"asset_id": "pod-1", "title": "Podcast", "value_stream": "news_clip", "territories": ["US"]},
        {"duration_s": 60.0, "audio_streams": 1, "video": None},
    )
    rows = [row("good-1"), audio_only] + [r for r, *_ in BAD_ROWS.values()]
    return mq.validate(rows, known_streams=STREAMS)


def test_facts_row_flattens_manifest_and_facts():
    manifest = parse_manifest(json.dumps({"asset_id": "bbb-s01e01", "title": "Big Buck Bunny", "value_stream":
                              "series_episode", "source": {"file": "v.mp4"}, "territories": ["US", "GB"]}))  # fmt: skip
    assert mq.facts_row(manifest, VIDEO_FACTS) == {
        "asset_id": "bbb-s01e01", "title": "Big Buck Bunny", "value_stream": "series_episode",
        "territories": "US,GB", "n_territories": 2, "duration_s": 596.5, "width": 1920, "height": 1080,
        "fps": 24.0, "interlaced": False, "audio_streams": 1, "has_video": True,
    }  # fmt: skip
    audio = mq.facts_row({"asset_id": "a", "title": "t", "value_stream": "news_clip", "territories": ["US"]},
                         {"duration_s": 60.0, "audio_streams": 2, "video": None})  # fmt: skip
    assert audio["has_video"] is False and audio["fps"] is None and audio["width"] is None


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_gx_suite_names_each_bad_row(gx_summary, case):
    bad_row, expectation, column, value = BAD_ROWS[case]
    hits = [f for f in gx_summary["failed"] if f["expectation"] == expectation and f["column"] == column]
    assert hits, gx_summary["failed"]
    assert value in hits[0]["unexpected"] and bad_row["asset_id"] in hits[0]["asset_ids"]


def test_gx_summary_is_versioned_and_flags_only_bad_rows(gx_summary):
    json.dumps(gx_summary, allow_nan=False)
    assert gx_summary["suite"] == "mediaflow_metadata" and gx_summary["suite_version"] == 1
    assert gx_summary["success"] is False
    assert gx_summary["evaluated"] == len(json.loads(mq.SUITE_PATH.read_text())["expectations"])
    assert gx_summary["successful"] == gx_summary["evaluated"] - len(gx_summary["failed"])
    flagged = {a for f in gx_summary["failed"] for a in f["asset_ids"]}
    assert flagged == {r["asset_id"] for r, *_ in BAD_ROWS.values()}, "good rows (and audio-only ones) pass"
    assert len(gx_summary["failed"]) == len(BAD_ROWS), "each bad row breaks exactly one expectation"


def test_gx_good_rows_pass():
    summary = mq.validate([row("good-1"), row("good-2", fps=59.94, width=3840, height=2160)], known_streams=STREAMS)
    assert summary["success"] is True and summary["failed"] == []
    assert summary["successful"] == summary["evaluated"] > 10


def test_suite_file_is_versioned_and_gx_is_not_imported_at_module_import():
    suite = json.loads(mq.SUITE_PATH.read_text(encoding="utf-8"))
    assert suite["meta"]["version"] == 1
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, mediaflow.metadata_quality; print('great_expectations' in sys.modules)"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(mq.__file__).resolve().parents[1])},
    )  # fmt: skip
    assert probe.stdout.strip() == "False"


def test_audio_normalised_by_the_pipeline_meets_the_spec(tmp_path):
    """A quiet (-30 dBFS) locale track through the pipeline's own audio chain lands within 1 LU of the target."""
    from mediaflow import ladder, loudness
    from mediaflow.spec import load_specs

    spec = load_specs()["news_clip"]  # -16 LUFS, -1.5 dBTP
    src = tmp_path / "quiet.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "aevalsrc=0.0316*sin(2*PI*440*t):s=48000:d=6", "-ac", "2", str(src)], check=True)  # fmt: skip
    out = tmp_path / "audio_xx"
    out.mkdir()
    subprocess.run(ladder.locale_audio_argv(src, out, loudness=spec.loudness, duration_s=6.0), check=True,
                   capture_output=True)  # fmt: skip
    measured = loudness.measure(out / "index.m3u8")
    assert abs(measured["integrated_lufs"] - spec.loudness.target_lufs) <= 1.0, measured
    assert loudness.check(measured, target_lufs=spec.loudness.target_lufs,
                          true_peak_dbtp=spec.loudness.true_peak_dbtp, name="audio_xx/index.m3u8") == []  # fmt: skip
