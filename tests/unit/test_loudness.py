"""Loudness that lands: sources made with ffmpeg that a single-pass normaliser got wrong (a quiet 5.1 film mix, a
loud clipped clip, a wide-range programme), through the real transcode (the single graph, then audio passes) and
the real AAC encode, checked the way compliance checks them; the measurement itself on BS.1770 conformance
signals (EBU Tech 3341 / ITU-R BS.2217 cases synthesised from their definitions: sine tones at known levels,
relative and absolute gates, channel weights).

Figures before this normaliser (single-pass dynamic loudnorm, stereo by ffmpeg's default downmix), for these
sources: 5.1 mix -23.7 LUFS / -0.9 dBTP, wide-range programme -20.7 LUFS / -1.0 dBTP.
"""

from __future__ import annotations

import subprocess

import pytest

from mediaflow import compliance, flow, localize, loudness, media
from mediaflow.spec import load_specs

SPEC = load_specs()["feature_film"]  # -23 LUFS, -1 dBTP
TARGET, CEILING = SPEC.loudness.target_lufs, SPEC.loudness.true_peak_dbtp


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def run_ffmpeg(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=300)


# ---------------------------------------------------------------- sources (10-20 s each)

FILM_51 = [  # a quiet film mix: music L/R, modulated dialogue and a door slam every 5 s in C, 50 Hz LFE, ambience
    "-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.026:d=15:seed=1",
    "-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.026:d=15:seed=2",
    "-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.11:d=15:seed=3",
    "-f", "lavfi", "-i", "aevalsrc=0.065*sin(2*PI*50*t):s=48000:d=15",
    "-f", "lavfi", "-i", "anoisesrc=c=brown:r=48000:a=0.022:d=15:seed=5",
    "-f", "lavfi", "-i", "anoisesrc=c=brown:r=48000:a=0.022:d=15:seed=6",
    "-f", "lavfi", "-i", "aevalsrc=0.39*exp(-30*mod(t\\,5))*sin(2*PI*180*t)*gte(t\\,1):s=48000:d=15",
    "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=15",
    "-filter_complex",
    "[2:a]volume='0.6+0.4*sin(2*PI*2.5*t)':eval=frame[c0];[c0][6:a]amix=inputs=2:normalize=0[c];"
    "[0:a][1:a][c][3:a][4:a][5:a]join=inputs=6:channel_layout=5.1[a]",
    "-map", "7:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s24le",
]  # fmt: skip
LOUD_CLIPPED = [  # decorrelated pink noise and kicks, hard-clipped at full scale
    "-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.5:d=12:seed=7",
    "-f", "lavfi", "-i", "aevalsrc=1.5*exp(-25*mod(t\\,0.5))*sin(2*PI*60*t):s=48000:d=12",
    "-filter_complex", "[0:a][1:a]amix=inputs=2:normalize=0,asplit[l][r];[r]adelay=37[rd];"
    "[l][rd]join=inputs=2:channel_layout=stereo,volume=0.75,aeval=clip(val(0)\\,-1\\,1)|clip(val(1)\\,-1\\,1)",
    "-c:a", "pcm_s16le",
]  # fmt: skip
WIDE_RANGE = [  # a programme rising 42 dB over 20 s, with near-full-scale hits in its loud half
    "-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.5:d=20:seed=9",
    "-f", "lavfi", "-i", "aevalsrc=0.9*exp(-150*mod(t\\,4))*sin(2*PI*300*t)*gte(t\\,10):s=48000:d=20",
    "-filter_complex", "[0:a]volume='pow(10\\,(-42+42*t/20)/20)':eval=frame[w];[w][1:a]amix=inputs=2:normalize=0,"
    "asplit[l][r];[r]adelay=23[rd];[l][rd]join=inputs=2:channel_layout=stereo",
    "-c:a", "pcm_s24le",
]  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("loudness-sources")
    made = {"film51.mkv": FILM_51, "loud.wav": LOUD_CLIPPED, "wide.wav": WIDE_RANGE}
    for name, args in made.items():
        ffmpeg(*args, str(d / name))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "10", "-c:a", "pcm_s16le", str(d / "silence.wav"))
    return d


def test_the_sources_are_what_they_stand_for(sources):
    film = media.inspect_source(sources / "film51.mkv", min_duration_s=0)
    assert film["audio"]["channels"] == 6
    assert film["loudness"]["integrated_lufs"] == pytest.approx(-34.0, abs=0.5), "quiet 5.1 mix (5.1 weights)"
    loud = media.inspect_source(sources / "loud.wav", min_duration_s=0)["loudness"]
    assert loud["integrated_lufs"] == pytest.approx(-15.0, abs=0.5) and loud["true_peak_dbtp"] >= -0.1, loud
    wide = media.inspect_source(sources / "wide.wav", min_duration_s=0)["loudness"]
    assert wide["lra_lu"] > 20, wide
    assert media.inspect_source(sources / "silence.wav", min_duration_s=0)["loudness"] == {
        "integrated_lufs": None, "lra_lu": 0.0, "true_peak_dbtp": None, "threshold_lufs": None}  # fmt: skip


def transcode(s3, path):
    store, buckets = s3
    key = f"deliveries/{path.stem}/{path.name}"
    store.upload(str(path), buckets.landing, key)
    ingested = {"asset_id": path.stem, "source_uri": f"s3://{buckets.landing}/{key}",
                "source": media.inspect_source(path, min_duration_s=0)}  # fmt: skip
    transcoded = flow.transcode(store, buckets, ingested=ingested, spec=SPEC, run_id="manual__loud",
                                run_ffmpeg=run_ffmpeg)  # fmt: skip
    checked = compliance.check_loudness(store, buckets, ingested=ingested, transcoded=transcoded, localized=[],
                                        spec=SPEC)  # fmt: skip
    return transcoded, checked


@pytest.mark.parametrize(
    "name, mode",
    [("film51.mkv", "dynamic"), ("loud.wav", "linear"), ("wide.wav", "dynamic")],
    ids=["quiet-5.1-film-mix", "loud-clipped-stereo", "wide-range-programme"],
)
def test_published_audio_lands_on_target_under_the_ceiling_after_aac(s3, sources, name, mode):
    transcoded, checked = transcode(s3, sources / name)
    published = checked["renditions"]["audio"]  # measured again by the check, on the AAC segments as published
    assert checked["passed"], checked["problems"]
    assert abs(published["integrated_lufs"] - TARGET) <= 1.0, published
    assert published["true_peak_dbtp"] < CEILING, published
    normalised = transcoded["loudness"]
    assert normalised["mode"] == mode, normalised
    assert normalised["reason"] is None
    assert 1 <= len(normalised["passes"]) <= loudness.MAX_PASSES
    assert normalised["output"]["integrated_lufs"] == pytest.approx(published["integrated_lufs"], abs=0.05)
    assert checked["normalisation"] == {"audio": normalised}, "the mode reaches the check (and the summary)"
    if name == "wide.wav":
        assert published["lra_lu"] > 20, "the range is kept: the threshold went to loudnorm with the source's figures"


def test_the_5_1_mix_is_measured_and_downmixed_in_a_defined_way(sources):
    src = sources / "film51.mkv"
    native = loudness.measure(src)
    stereo = loudness.measure(src, chain=loudness.DOWNMIX)
    # a coherent dialogue in C is louder in the downmix; surrounds lose their +1.5 dB weight; LFE stays out
    assert native["integrated_lufs"] != pytest.approx(stereo["integrated_lufs"], abs=0.05)
    assert stereo["threshold_lufs"] == pytest.approx(stereo["integrated_lufs"] - 10, abs=1.0)
    first = loudness.first_pass(stereo, target_lufs=TARGET, true_peak_dbtp=CEILING)
    assert first.mode == "dynamic", "+11 dB of gain would take its door slams over the ceiling"
    chain = loudness.audio_filter(first, target_lufs=TARGET)
    assert chain.startswith(loudness.DOWNMIX + ",loudnorm=I=-23:TP=-2:")
    assert f":measured_I={stereo['integrated_lufs']:.2f}:" in chain and ":linear=false" in chain


def test_digital_silence_gets_a_precise_reason(s3, sources):
    transcoded, checked = transcode(s3, sources / "silence.wav")
    normalised = transcoded["loudness"]
    assert (normalised["mode"], len(normalised["passes"])) == ("none", 1)
    assert normalised["reason"] == ("source audio is digital silence (nothing above the -70 LUFS absolute gate): "
                                    "no gain reaches -23 LUFS")  # fmt: skip
    assert checked["problems"] == ["audio/index.m3u8: loudness not measurable: nothing above the -70 LUFS absolute "
                                   "gate (digital silence), target -23 ± 1 LU"]  # fmt: skip


def test_an_extra_language_track_lands_too(sources, tmp_path):
    """The loud clipped clip as a locale's audio (padded to the programme's length), through localize."""
    done = localize.audio_to_hls(sources / "loud.wav", tmp_path, locale="fr-FR", duration_s=14.0,
                                 loudness=SPEC.loudness, run_ffmpeg=run_ffmpeg)  # fmt: skip
    measured = loudness.measure(tmp_path / "audio_fr-FR" / "index.m3u8")
    assert loudness.check(measured, target_lufs=TARGET, true_peak_dbtp=CEILING, name="audio_fr-FR") == []
    assert done["normalised"]["mode"] == "linear"
    assert sorted(p.name for p in (tmp_path / "audio_fr-FR").iterdir())[-1] == "seg_00003.ts", "14 s in 4 s segments"


# ---------------------------------------------------------------- the passes (pure)


def test_first_pass_is_linear_when_the_gain_keeps_the_peak_a_margin_under_the_ceiling():
    quiet = {"integrated_lufs": -30.0, "lra_lu": 5.0, "true_peak_dbtp": -12.0, "threshold_lufs": -40.0}
    assert loudness.first_pass(quiet, target_lufs=-23, true_peak_dbtp=-1) == loudness.Pass("linear", 7.0)
    peaky = {**quiet, "true_peak_dbtp": -8.5}  # -8.5 + 7 = -1.5: over -2, the ceiling less the margin
    p = loudness.first_pass(peaky, target_lufs=-23, true_peak_dbtp=-1)
    assert (p.mode, p.gain_db, p.peak_dbtp, p.lra_lu, p.measured) == (
        "dynamic",
        0.0,
        -2.0,
        5.0,
        (-30.0, 5.0, -8.5, -40.0),
    )
    silent = {"integrated_lufs": None, "lra_lu": 0.0, "true_peak_dbtp": None, "threshold_lufs": None}
    assert loudness.first_pass(silent, target_lufs=-23, true_peak_dbtp=-1).mode == "none"
    assert loudness.first_pass(None, target_lufs=-23, true_peak_dbtp=-1).mode == "dynamic"


def test_next_pass_corrects_by_what_the_encode_measured():
    src = {"integrated_lufs": -30.0, "lra_lu": 5.0, "true_peak_dbtp": -12.0, "threshold_lufs": -40.0}
    kw = dict(source=src, target_lufs=-23, true_peak_dbtp=-1)
    linear = loudness.Pass("linear", 7.0)
    landed = {"integrated_lufs": -23.3, "true_peak_dbtp": -4.8}
    assert loudness.next_pass(linear, landed, **kw) is None
    assert loudness.next_pass(linear, {**landed, "integrated_lufs": -23.8}, **kw) == loudness.Pass("linear", 7.8)
    # the same gain again would land, but AAC took the peak within the guard of the ceiling: dynamic instead
    hot = loudness.next_pass(linear, {**landed, "true_peak_dbtp": -0.7}, **kw)
    assert (hot.mode, hot.peak_dbtp, hot.gain_db) == ("dynamic", -2.0, 0.0)
    dynamic = loudness.first_pass({**src, "true_peak_dbtp": -1.0}, target_lufs=-23, true_peak_dbtp=-1)
    off = loudness.next_pass(dynamic, {"integrated_lufs": -20.9, "true_peak_dbtp": -2.0}, **kw)
    assert (off.mode, off.gain_db, off.peak_dbtp) == ("dynamic", -2.1, -2.0)
    over = loudness.next_pass(dynamic, {"integrated_lufs": -23.0, "true_peak_dbtp": -0.6}, **kw)
    assert (over.gain_db, over.peak_dbtp) == (0.0, -3.4), "aim lower by what the encode went over"
    assert loudness.next_pass(loudness.Pass("none"), {"integrated_lufs": None}, **kw) is None


def test_normalise_stops_after_max_passes_and_says_why():
    encoded = []

    def encode(p):
        encoded.append(p)

    def stuck():
        return {"integrated_lufs": -18.1, "lra_lu": 3.0, "true_peak_dbtp": -0.6, "threshold_lufs": -28.1}

    src = {"integrated_lufs": -15.0, "lra_lu": 3.0, "true_peak_dbtp": 0.0, "threshold_lufs": -25.0}
    first = loudness.first_pass(src, target_lufs=-23, true_peak_dbtp=-1)
    record = loudness.normalise(first, source=src, target_lufs=-23, true_peak_dbtp=-1, encode=encode,
                                measure_encoded=stuck, first_encoded=True)  # fmt: skip
    assert len(record["passes"]) == loudness.MAX_PASSES and len(encoded) == loudness.MAX_PASSES - 1
    assert record["reason"] == (f"not in spec after {loudness.MAX_PASSES} passes: normalised audio: loudness -18.1 "
                                "LUFS, target -23 ± 1 LU; normalised audio: true peak -0.6 dBTP above the -1 dBTP "
                                "ceiling")  # fmt: skip


def test_parse_metadata_reads_the_last_figures_among_progress_lines():
    text = (
        "frame:0    pts:0       pts_time:0\nlavfi.r128.M=-120.700\nlavfi.r128.I=-70.000\nlavfi.r128.LRA=0.000\n"
        "lavfi.r128.true_peak=0.000\nout_time_us=100000\nprogress=continue\n"
        + "".join(f"frame:{i}\nlavfi.r128.M=-23.000\n" for i in range(1, 30))
        + "lavfi.r128.I=-23.004\nlavfi.r128.LRA=1.250\nlavfi.r128.true_peak=0.891\nout_time_us=3000000\n"
    )
    assert loudness.parse_metadata(text) == {"integrated_lufs": -23.0, "lra_lu": 1.25, "true_peak_dbtp": -1.0,
                                             "threshold_lufs": -33.0}  # fmt: skip
    assert loudness.parse_metadata("out_time_us=1\nprogress=end\n") is None


# ---------------------------------------------------------------- BS.1770 conformance signals


def sequence(levels: list[tuple[float, float]]) -> str:
    """A stereo 1 kHz sine through (dBFS, seconds) sections, both channels alike (X dBFS reads X LUFS)."""
    amplitude, t0 = "0", sum(seconds for _, seconds in levels)
    for dbfs, seconds in reversed(levels):  # if(lt(t,end1),a1,if(lt(t,end2),a2,...))
        t0 -= seconds
        amplitude = f"if(lt(t\\,{t0 + seconds:g})\\,{10 ** (dbfs / 20):.9f}\\,{amplitude})"
    expr = f"{amplitude}*sin(2*PI*1000*t)"
    return f"aevalsrc={expr}|{expr}:c=stereo:s=48000:d={sum(s for _, s in levels):g}"


CONFORMANCE = {  # name -> (lavfi source, channel layout, expected integrated LUFS)
    "3341-1-stereo-23": (sequence([(-23, 10)]), "stereo", -23.0),
    "3341-2-stereo-33": (sequence([(-33, 10)]), "stereo", -33.0),
    "3341-3-relative-gate": (sequence([(-36, 10), (-23, 60), (-36, 10)]), "stereo", -23.0),
    "3341-4-absolute-gate": (sequence([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)]), "stereo", -23.0),
    "3341-5-levels": (sequence([(-26, 20), (-20, 20.1), (-26, 20)]), "stereo", -23.0),
    # 5.0 / 5.1 at L,R -28, C -24, Ls,Rs -30 dBFS: surrounds weighted +1.5 dB; an LFE tone must not count
    "3341-6-5.0-weights": ("aevalsrc=" + "|".join(f"{10 ** (d / 20):.9f}*sin(2*PI*1000*t)" for d in (-28, -28, -24, -30, -30))
                           + ":c=5.0:s=48000:d=10", "5.0", -23.0),
    "3341-6-5.1-lfe-left-out": ("aevalsrc=" + "|".join(f"{10 ** (d / 20):.9f}*sin(2*PI*1000*t)" for d in (-28, -28, -24))
                                + "|0.1*sin(2*PI*60*t)|" + "|".join(f"{10 ** (-30 / 20):.9f}*sin(2*PI*1000*t)" for _ in "ab")
                                + ":c=5.1:s=48000:d=10", "5.1", -23.0),
    "bs2217-relative-gate-10": (sequence([(-10, 10), (-30, 10)]), "stereo", -10.0),
    "bs2217-absolute-gate-69.5": (sequence([(-69.5, 10), (-75, 10)]), "stereo", -69.5),
}  # fmt: skip


@pytest.fixture(scope="module")
def conformance(tmp_path_factory):
    d = tmp_path_factory.mktemp("conformance")
    for name, (source, layout, _) in CONFORMANCE.items():
        ffmpeg("-f", "lavfi", "-i", source, "-c:a", "pcm_s24le", str(d / f"{name}.wav"))
        assert media.probe(d / f"{name}.wav")["audio"]["channels"] == {"stereo": 2, "5.0": 5, "5.1": 6}[layout]
    return d


@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_conformance_signals_measure_within_a_tenth_of_a_lu(conformance, name):
    expected = CONFORMANCE[name][2]
    measured = loudness.measure(conformance / f"{name}.wav")
    assert measured["integrated_lufs"] == pytest.approx(expected, abs=0.1), measured
    decoded = media.inspect_source(conformance / f"{name}.wav", min_duration_s=0)["loudness"]  # the ingest's decode
    assert decoded["integrated_lufs"] == pytest.approx(expected, abs=0.1), decoded
