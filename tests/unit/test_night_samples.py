"""samples.generate_night: a night's deliveries, each with what must become of it, the same for a seed."""

from __future__ import annotations

import json

import pytest

from mediaflow import rights
from mediaflow.manifest import parse_manifest
from mediaflow_dev import samples


def _night(dest):
    return samples.generate_night(dest, 24, seed=5, seconds=(1.0, 1.5), heights={360: 1}, broken_share=0.34,
                                  review_share=0.09, distinct=7)  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("night") / "n"
    return folder, _night(folder)


def test_a_night_is_mixed_and_says_what_becomes_of_each_delivery(made):
    folder, night = made
    assert len(night) == 24 and len({d.asset_id for d in night}) == 24
    kinds = {d.kind for d in night}
    assert {k for k, _ in samples.NIGHT_BROKEN} <= kinds  # 8 broken: one of each kind
    assert {"legal_by_spec", "no_rights"} <= kinds
    assert {d.media.split(" ")[0] for d in night if d.status == "published"} >= set(samples.NIGHT_FORMATS) - {
        "audio_only"
    }
    for d in night:
        assert (d.status == "published") == (d.kind in ("ok", "locale_rejected"))
        assert (d.reason is None) == (d.kind == "ok")
    assert json.loads((folder / "expected.json").read_text())[0]["delivery_id"] == night[0].delivery_id
    catalog = {(a.asset_id, a.territory) for a in rights.parse_catalog((folder / "avails.csv").read_text())}
    streams = {"feature_film", "news_clip", "series_episode"}
    for d in night:
        raw = (folder / d.delivery_id / "manifest.json").read_bytes()
        if d.kind == "not_json":
            continue
        m = parse_manifest(raw, known_streams=streams | {"telenovela"})
        if d.status == "published":  # rights for every territory, so the legal review stays automatic
            assert all((d.asset_id, t) in catalog for t in m.territories), d
            assert (folder / d.delivery_id / m.source_file).stat().st_size > 0
        if d.kind == "no_rights":
            assert (d.asset_id, "GB") not in catalog and "GB" in m.territories


def test_the_same_seed_makes_the_same_night(made, tmp_path):
    folder, night = made
    assert _night(tmp_path / "again") == night
    for d in night:
        assert (tmp_path / "again" / d.delivery_id / "manifest.json").read_bytes() == \
            (folder / d.delivery_id / "manifest.json").read_bytes()  # fmt: skip


def test_a_folder_that_is_not_a_night_is_never_wiped(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        samples.generate_night(tmp_path / "mine", 1)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"
