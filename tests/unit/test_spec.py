"""Stream specs: the shipped ones load; a broken one fails naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaflow.spec import STREAMS_DIR, SpecError, format_duration, load_spec, load_specs, parse_duration

SHIPPED = sorted(STREAMS_DIR.glob("*.yaml"))

VALID = """\
name: {name}
owners: [ops@example.com]
ladder:
  - {{height: 720, video_kbps: 2500}}
  - {{height: 360, video_kbps: 800}}
loudness: {{target_lufs: -16, true_peak_dbtp: -1.5}}
stages:
  ingest: {{sla: 2m}}
lead_time_sla: 45m
"""


def write(tmp_path: Path, text: str, name: str = "good_stream") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- shipped specs


def test_shipped_specs_load_with_their_own_ladders_and_slas():
    specs = load_specs(STREAMS_DIR)
    assert set(specs) == {"feature_film", "news_clip", "series_episode"}
    film = specs["feature_film"]
    assert film.reviews == {"editorial": "auto", "legal": "auto", "qc": "auto"}
    assert specs["series_episode"].reviews["legal"] == "human"
    assert {p.stem for p in SHIPPED} == set(specs), "one spec per YAML file in include/streams"
    news, series = specs["news_clip"], specs["series_episode"]
    assert news.ladder != series.ladder
    assert news.stage_slas_s != series.stage_slas_s
    assert news.lead_time_sla_s != series.lead_time_sla_s
    assert series.ladder[0].height == 1080 and news.ladder[0].height == 720
    assert series.stage_slas_s["review"] == 24 * 3600
    assert news.lead_time_sla_s == 45 * 60


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_spec_dag_id_and_ladder_order(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.dag_id == f"value_stream__{path.stem}"
    heights = [r.height for r in spec.ladder]
    assert heights == sorted(heights, reverse=True), f"{path.name}: ladder must be high -> low, got {heights}"
    assert all(h % 2 == 0 for h in heights)
    assert spec.owners and spec.stage_slas_s and spec.lead_time_sla_s > 0


def test_ladder_is_sorted_high_to_low_even_when_written_low_to_high(tmp_path):
    text = VALID.format(name="good_stream").replace(
        "  - {height: 720, video_kbps: 2500}\n  - {height: 360, video_kbps: 800}",
        "  - {height: 360, video_kbps: 800}\n  - {height: 1080, video_kbps: 5000}\n  - {height: 720, video_kbps: 2500}",
    )
    spec = load_spec(write(tmp_path, text))
    assert [(r.height, r.video_kbps) for r in spec.ladder] == [(1080, 5000), (720, 2500), (360, 800)]


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("24h", 86400), ("2d", 172800), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "ten minutes", "5w", "-3m", "m10", None])
def test_parse_duration_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds,text", [(90, "90s"), (600, "10m"), (86400, "1d"), (93600, "26h"), (172800, "2d")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds


# ---------------------------------------------------------------- invalid specs


def test_valid_template_loads(tmp_path):
    # Guard for the cases below: each differs from this valid spec only in the broken field.
    spec = load_spec(write(tmp_path, VALID.format(name="good_stream")))
    assert spec.name == "good_stream" and spec.channels == ("web",)


BASE = VALID.format(name="good_stream")
BROKEN = {
    "odd height": (BASE.replace("{height: 360,", "{height: 361,"), "ladder[1].height"),
    "height too small": (BASE.replace("{height: 360,", "{height: 100,"), "ladder[1].height"),
    "height not a number": (BASE.replace("{height: 360,", "{height: tall,"), "ladder[1].height"),
    "kbps not a number": (BASE.replace("video_kbps: 800", "video_kbps: fast"), "ladder[1].video_kbps"),
    "rung extra key": (BASE.replace("video_kbps: 800}", "video_kbps: 800, fps: 30}"), "ladder[1]"),
    "duplicate heights": (BASE.replace("{height: 360,", "{height: 720,"), "ladder"),
    "empty ladder": (
        BASE.replace("ladder:\n  - {height: 720, video_kbps: 2500}\n  - {height: 360, video_kbps: 800}", "ladder: []"),
        "ladder",
    ),
    "bad stage sla": (BASE.replace("ingest: {sla: 2m}", "ingest: {sla: soon}"), "stages.ingest.sla"),
    "stage extra key": (BASE.replace("ingest: {sla: 2m}", "ingest: {sla: 2m, owner: x}"), "stages.ingest"),
    "bad lead time": (BASE.replace("lead_time_sla: 45m", "lead_time_sla: 45"), "lead_time_sla"),
    "bad owner": (BASE.replace("owners: [ops@example.com]", "owners: [not-an-email]"), "owners[0]"),
    "second owner bad": (BASE.replace("owners: [ops@example.com]", "owners: [ops@example.com, bob]"), "owners[1]"),
    "no owners": (BASE.replace("owners: [ops@example.com]", "owners: []"), "owners"),
    "unknown key": (BASE + "colour: blue\n", "colour"),
    "loudness out of range": (BASE.replace("target_lufs: -16", "target_lufs: 3"), "loudness.target_lufs"),
    "loudness missing field": (BASE.replace(", true_peak_dbtp: -1.5", ""), "loudness"),
    "bad review policy": (BASE + "reviews: {legal: maybe}\n", "reviews.legal"),
    "bad channels": (BASE + "channels: [Web TV]\n", "channels"),
    "min duration negative": (BASE + "min_duration_s: -1\n", "min_duration_s"),
    "missing lead_time_sla": (BASE.replace("lead_time_sla: 45m\n", ""), "lead_time_sla"),
    "missing stages": (BASE.replace("stages:\n  ingest: {sla: 2m}\n", ""), "stages"),
    "missing loudness": (BASE.replace("loudness: {target_lufs: -16, true_peak_dbtp: -1.5}\n", ""), "loudness"),
    "missing name": (BASE.replace("name: good_stream\n", ""), "name"),
    "bad name": (BASE.replace("name: good_stream", "name: Good-Stream"), "name"),
    "retries negative": (BASE + "retries: {count: -1}\n", "retries.count"),
    "retries fractional": (BASE + "retries: {count: 1.5}\n", "retries.count"),
    "retries unknown key": (BASE + "retries: {times: 3}\n", "retries"),
    "retry delay not a duration": (BASE + "retries: {delay: soon}\n", "retries.delay"),
    "qc allowance negative": (BASE + "qc: {head_allowance_s: -3}\n", "qc.head_allowance_s"),
    "qc level positive": (BASE + "qc: {silence_db: 6}\n", "qc.silence_db"),
    "qc unknown key": (BASE + "qc: {tail_allowance: 5}\n", "qc"),
}


def test_qc_allowances_default_to_broadcast_practice_and_a_spec_may_set_them(tmp_path):
    qc = load_spec(write(tmp_path, BASE)).qc
    assert (qc.head_allowance_s, qc.tail_allowance_s) == (3.0, 5.0)
    assert (qc.black_mid_min_s, qc.freeze_mid_min_s, qc.silence_mid_min_s) == (2.0, 2.0, 2.0)
    spec = load_spec(write(tmp_path, BASE + "qc: {head_allowance_s: 10, black_mid_min_s: 0.5, silence_db: -50}\n"))
    assert (spec.qc.head_allowance_s, spec.qc.black_mid_min_s, spec.qc.silence_db) == (10.0, 0.5, -50.0)
    assert spec.qc.tail_allowance_s == 5.0, "the keys not given keep their defaults"


def test_retries_default_to_two_and_a_spec_may_set_them(tmp_path):
    assert (load_spec(write(tmp_path, BASE)).retries, load_spec(write(tmp_path, BASE)).retry_delay_s) == (2, 10.0)
    spec = load_spec(write(tmp_path, BASE + "retries: {count: 0, delay: 1m}\n"))
    assert (spec.retries, spec.retry_delay_s) == (0, 60.0)


@pytest.mark.parametrize("text,fieldname", BROKEN.values(), ids=list(BROKEN))
def test_invalid_spec_names_file_and_field(tmp_path, text, fieldname):
    assert text != BASE, "the case must actually change the valid spec"
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message, f"message does not name the file: {message}"
    assert f"'{fieldname}'" in message, f"message does not name field {fieldname!r}: {message}"


def test_name_must_equal_file_name(tmp_path):
    path = write(tmp_path, VALID.format(name="other_stream"), name="good_stream")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and "'name'" in message
    assert "other_stream" in message and "good_stream" in message


def test_missing_required_key_says_required(tmp_path):
    path = write(tmp_path, BASE.replace("owners: [ops@example.com]\n", ""))
    with pytest.raises(SpecError, match=r"field 'owners': is required") as err:
        load_spec(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["name: [unclosed\n", "name: a\n  bad: indent\n\tx: 1\n"], ids=["flow", "indent"])
def test_bad_yaml_names_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match="not valid YAML") as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_non_mapping_spec_names_the_file(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(SpecError, match="mapping") as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_load_specs_fails_on_any_broken_spec_in_the_folder(tmp_path):
    write(tmp_path, VALID.format(name="good_stream"))
    bad = write(tmp_path, VALID.format(name="bad_stream").replace("{height: 360,", "{height: 361,"), name="bad_stream")
    with pytest.raises(SpecError) as err:
        load_specs(tmp_path)
    assert str(bad) in str(err.value) and "ladder[1].height" in str(err.value)


def test_channel_name_with_trailing_newline_is_rejected(tmp_path):
    # Channel names become distribution prefixes (<channel>/<asset_id>/).
    path = write(tmp_path, BASE + 'channels: ["web\\n"]\n')
    try:
        spec = load_spec(path)
    except SpecError as e:
        assert str(path) in str(e) and "'channels'" in str(e), str(e)
    else:
        raise AssertionError(
            f"BUG spec.py:144: channels {spec.channels!r} accepted; spec._NAME uses '$', which matches before a "
            "trailing newline (use _NAME.fullmatch or '\\Z')"
        )


def test_extra_spec_folders_add_streams_and_a_duplicate_name_is_refused(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    write(extra, VALID.format(name="good_stream"))
    monkeypatch.setenv("MEDIAFLOW_EXTRA_STREAMS", str(extra))
    specs = load_specs()
    assert "good_stream" in specs and "news_clip" in specs
    dup = tmp_path / "dup"
    dup.mkdir()
    (dup / "news_clip.yaml").write_text((STREAMS_DIR / "news_clip.yaml").read_text())
    monkeypatch.setenv("MEDIAFLOW_EXTRA_STREAMS", str(dup))
    with pytest.raises(SpecError, match=r"news_clip.yaml: field 'name': 'news_clip' is already defined by"):
        load_specs()


def test_the_sla_drill_stream_of_the_integration_tests_is_valid():
    spec = load_spec(Path(__file__).parents[1] / "integration" / "streams" / "sla_drill.yaml")
    assert spec.stage_slas_s["transcode"] == 3 and spec.lead_time_sla_s == 20
