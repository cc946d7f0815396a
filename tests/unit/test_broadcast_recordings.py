"""Broadcast recordings through the decode test (real ffmpeg): a DVB-style MPEG-2 576i transport stream recorded
off air starts mid-GOP and is usable from its first keyframe on; one cut short in an upload is not; a multiplex of
several programmes gives the video and audio of one programme."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaflow import media
from mediaflow_dev import samples

SECONDS = 6


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broadcast")
    whole = d / "whole.ts"
    samples.make_broadcast_ts(whole, seconds=SECONDS)
    samples.cut_mid_gop(whole, d / "off-air.ts")
    data = whole.read_bytes()
    (d / "upload-cut-short.ts").write_bytes(data[: int(len(data) * 0.6)])  # inside a packet, like any upload
    samples.make_broadcast_ts(d / "two-programmes.ts", seconds=SECONDS, programmes=2)
    return {p.stem: p for p in d.glob("*.ts")}


def test_a_recording_that_starts_mid_gop_is_used_from_its_first_keyframe(recordings, tmp_path):
    src = recordings["off-air"]
    with pytest.raises(media.MediaError, match="does not decode cleanly"):
        media.inspect_source(src, min_duration_s=1)  # as it is: the frames before the first keyframe do not decode
    facts = media.inspect_source(src, min_duration_s=1, workdir=tmp_path)
    assert facts["prepared"] == "off-air.ts"
    prepared = tmp_path / facts["prepared"]
    assert media.leading_frames(prepared, stream_index=facts["video"]["index"]) is None, "starts with a keyframe"
    [warning] = facts["warnings"]
    assert warning.startswith("off-air.ts: starts mid-GOP: ") and "before the first keyframe" in warning
    assert "were skipped" in warning
    assert (facts["video"]["width"], facts["video"]["height"], facts["video"]["interlaced"]) == (720, 576, True)
    assert facts["audio"]["codec"] == "mp2" and facts["loudness"] is not None
    assert 3 < facts["duration_s"] <= SECONDS


def test_a_transport_stream_cut_short_is_still_rejected(recordings, tmp_path):
    src = recordings["upload-cut-short"]
    with pytest.raises(media.MediaError) as err:
        media.inspect_source(src, min_duration_s=1, workdir=tmp_path)
    message = str(err.value)
    assert message.startswith("upload-cut-short.ts: does not decode cleanly (truncated or corrupt): "), message
    assert "decode errors in" in message and "tolerated" in message, "the figure and the limit"
    assert not list(tmp_path.iterdir()), "nothing prepared"


def test_a_clean_recording_is_used_as_delivered(recordings, tmp_path):
    facts = media.inspect_source(recordings["whole"], min_duration_s=1, workdir=tmp_path)
    assert "prepared" not in facts and "warnings" not in facts
    assert not list(tmp_path.iterdir())


def test_several_programmes_give_the_video_and_audio_of_one(recordings, tmp_path):
    facts = media.inspect_source(recordings["two-programmes"], min_duration_s=1, workdir=tmp_path)
    assert facts["prepared"] == "two-programmes.ts"
    assert (facts["video"]["width"], facts["video"]["height"]) == (720, 576), "the largest picture"
    assert facts["audio_streams"] == 1, "only the programme's audio is kept"
    assert any("used video stream 2 and audio stream 3" in w for w in facts["warnings"]), facts["warnings"]
    prepared = media.probe(tmp_path / facts["prepared"])
    assert prepared["video"]["width"] == 720 and prepared["audio_streams"] == 1
