"""Delivery manifests: the DESIGN example parses; every bad input is reported, naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from mediaflow.manifest import Manifest, ManifestError, parse_manifest

STREAMS = {"series_episode", "news_clip"}
SHA = "ab" * 32

DESIGN_EXAMPLE = {
    "asset_id": "bbb-s01e01",
    "title": "Big Buck Bunny",
    "value_stream": "series_episode",
    "source": {"file": "video.mp4", "sha256": SHA.upper()},
    "captions": [{"locale": "en-US", "file": "en.srt"}, {"locale": "es-ES", "file": "es.vtt"}],
    "audio": [{"locale": "fr-FR", "file": "fr.wav"}],
    "territories": ["US", "GB", "ES"],
    "channels": ["web"],
    "rating": {"scheme": "MPA", "value": "PG"},
    "delivered_at": "2026-11-28T01:00:00Z",
    "metadata": {"season": 1, "anything": ["goes", "here"]},
}


def doc(**changes) -> dict:
    data = copy.deepcopy(DESIGN_EXAMPLE)
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return data


_DROP = object()


def problems_for(data, **kwargs) -> list[str]:
    raw = data if isinstance(data, (str, bytes)) else json.dumps(data)
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw, **kwargs)
    assert err.value.problems, "ManifestError without problems"
    assert str(err.value) == "; ".join(err.value.problems)
    return err.value.problems


def test_design_example_parses():
    m = parse_manifest(json.dumps(DESIGN_EXAMPLE), known_streams=STREAMS)
    assert isinstance(m, Manifest)
    assert m.asset_id == "bbb-s01e01"
    assert m.title == "Big Buck Bunny"
    assert m.value_stream == "series_episode"
    assert m.source_file == "video.mp4"
    assert m.source_sha256 == SHA, "sha256 is normalised to lower case"
    assert m.territories == ("US", "GB", "ES")
    assert m.channels == ("web",)
    assert [c["locale"] for c in m.captions] == ["en-US", "es-ES"]
    assert m.audio[0]["file"] == "fr.wav"
    assert m.rating == {"scheme": "MPA", "value": "PG"}
    assert m.delivered_at == "2026-11-28T01:00:00Z"
    assert m.metadata["season"] == 1
    assert m.files() == ["video.mp4", "en.srt", "es.vtt", "fr.wav"]


def test_minimal_manifest_parses_from_bytes_without_sha_or_sidecars():
    raw = json.dumps(
        {
            "asset_id": "clip-1",
            "title": "Clip",
            "value_stream": "news_clip",
            "source": {"file": "media/clip.mov"},
            "territories": ["US"],
        }
    ).encode()
    m = parse_manifest(raw, known_streams=STREAMS)
    assert m.source_sha256 is None
    assert m.files() == ["media/clip.mov"]
    assert m.captions == () and m.audio == () and m.metadata == {}


@pytest.mark.parametrize("field", ["asset_id", "title", "value_stream", "source", "territories"])
def test_missing_required_field_is_named(field):
    problems = problems_for(doc(**{field: _DROP, "captions": _DROP, "audio": _DROP}), known_streams=STREAMS)
    assert any(f"required field '{field}' is missing" in p for p in problems), problems
    assert all(p.startswith("manifest.json") for p in problems)


@pytest.mark.parametrize("field,empty", [("title", ""), ("territories", []), ("source", {})])
def test_empty_required_field_counts_as_missing(field, empty):
    problems = problems_for(doc(**{field: empty}))
    assert any(f"'{field}'" in p and "missing" in p for p in problems), problems


def test_source_without_file_is_named():
    problems = problems_for(doc(source={"sha256": SHA}))
    assert any("'source.file'" in p for p in problems), problems


def test_unknown_value_stream_lists_known_ones():
    problems = problems_for(doc(value_stream="feature_film"), known_streams=STREAMS)
    assert len(problems) == 1
    assert "'value_stream'" in problems[0] and "feature_film" in problems[0]
    assert "news_clip" in problems[0] and "series_episode" in problems[0]


def test_value_stream_not_checked_without_known_streams():
    assert parse_manifest(json.dumps(doc(value_stream="feature_film"))).value_stream == "feature_film"


def test_unknown_top_level_key_is_named_and_points_to_metadata():
    problems = problems_for(doc(director="Sacha Goedegebure"))
    assert len(problems) == 1
    assert "'director'" in problems[0] and "metadata" in problems[0]


@pytest.mark.parametrize(
    "asset_id",
    ["bbb/s01e01", "../etc", "bbb..s01", "BBB-S01E01", "-leading-dash", "a" * 65, "has space", 42],
    ids=["slash", "dotdot-path", "dotdot-inside", "uppercase", "leading-dash", "too-long", "space", "number"],
)
def test_bad_asset_id_is_named(asset_id):
    problems = problems_for(doc(asset_id=asset_id))
    assert len(problems) == 1, problems
    assert "'asset_id'" in problems[0]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "./video.mp4", "dir//video.mp4"])
def test_source_file_must_stay_inside_the_delivery(name):
    problems = problems_for(doc(source={"file": name}))
    assert len(problems) == 1, problems
    assert "'source.file'" in problems[0] and name in problems[0]


@pytest.mark.parametrize("kind", ["captions", "audio"])
def test_sidecar_file_must_stay_inside_the_delivery(kind):
    problems = problems_for(doc(**{kind: [{"locale": "en-US", "file": "../secret.srt"}]}))
    assert any(f"'{kind}[0].file'" in p for p in problems), problems


def test_sidecar_without_locale_is_named():
    problems = problems_for(doc(captions=[{"locale": "en-US", "file": "en.srt"}, {"file": "es.vtt"}]))
    assert any("'captions[1]'" in p and "locale" in p for p in problems), problems


@pytest.mark.parametrize("sha", ["abc", "z" * 64, SHA + "0", 123])
def test_bad_sha256_is_named(sha):
    problems = problems_for(doc(source={"file": "video.mp4", "sha256": sha}))
    assert len(problems) == 1 and "'source.sha256'" in problems[0], problems


def test_unknown_source_key_is_named():
    problems = problems_for(doc(source={"file": "video.mp4", "md5": "x"}))
    assert any("source.md5" in p for p in problems), problems


@pytest.mark.parametrize("territories", [["us"], ["USA"], "US", ["US", 1], [""]])
def test_bad_territories_are_named(territories):
    problems = problems_for(doc(territories=territories))
    assert len(problems) == 1 and "'territories'" in problems[0], problems


@pytest.mark.parametrize(
    "field,value",
    [("delivered_at", "last tuesday"), ("channels", "web"), ("metadata", []), ("rating", "PG"), ("title", 7)],
)
def test_bad_optional_fields_are_named(field, value):
    problems = problems_for(doc(**{field: value}))
    assert len(problems) == 1 and f"'{field}'" in problems[0], problems


@pytest.mark.parametrize("raw", ["{not json", b"\xff\xfe\x00", "", "[1, 2]", '"a string"'])
def test_not_json_or_not_an_object(raw):
    problems = problems_for(raw)
    assert len(problems) == 1 and problems[0].startswith("manifest.json:"), problems
    assert "JSON" in problems[0]


def test_every_problem_is_reported_at_once():
    data = doc(
        asset_id="Bad/ID",
        title=_DROP,
        value_stream="nope",
        source={"file": "../escape.mp4", "sha256": "short"},
        territories=["usa"],
        extra_field=True,
    )
    problems = problems_for(data, known_streams=STREAMS)
    joined = "\n".join(problems)
    for field in (
        "'asset_id'",
        "'title'",
        "'value_stream'",
        "'source.file'",
        "'source.sha256'",
        "'territories'",
        "'extra_field'",
    ):
        assert field in joined, f"{field} not reported; got:\n{joined}"
    assert len(problems) == 7, joined


def test_asset_id_with_trailing_newline_is_rejected():
    # The asset id becomes part of S3 keys (work/<asset_id>/..., <channel>/<asset_id>/...): a vendor's
    # stray newline must be rejected, not turned into a key.
    try:
        m = parse_manifest(json.dumps(doc(asset_id="bbb-s01e01\n")))
    except ManifestError as e:
        assert any("'asset_id'" in p for p in e.problems), e.problems
    else:
        raise AssertionError(
            f"BUG manifest.py:76: asset_id {m.asset_id!r} accepted; ASSET_ID uses '$', which matches before a "
            "trailing newline (use ASSET_ID.fullmatch or '\\Z')"
        )


def test_sidecar_only_delivery_needs_no_source():
    """Late captions/audio for a published title: no source file, nothing to transcode."""
    m = parse_manifest(
        json.dumps(
            {
                "asset_id": "clip-1",
                "title": "Clip",
                "value_stream": "news_clip",
                "captions": [{"locale": "de-DE", "file": "de.srt"}],
                "territories": ["DE"],
            }
        ),
        known_streams=STREAMS,
    )
    assert m.sidecar_only and m.source_file is None
    assert m.files() == ["de.srt"]
