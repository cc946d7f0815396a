"""The audience feedback figures on hand-built event sets whose answers are worked out by hand."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from mediaflow import feedback as fb

T0 = "2026-11-27T20:00:00Z"


def ev(title, session, event, position_s=0.0, *, territory="US", locale="en-US", poster=None):
    return {"title": title, "territory": territory, "locale": locale, "session": session, "position_s": position_s,
            "event": event, "timestamp": T0, "poster": poster}  # fmt: skip


def watched(title, session, furthest, **kw):
    """A started session that stopped at `furthest`, with a pause half-way."""
    return [ev(title, session, "play", 0.0, **kw), ev(title, session, "pause", furthest / 2, **kw),
            ev(title, session, "play", furthest / 2, **kw), ev(title, session, "stop", furthest, **kw)]  # fmt: skip


CATALOG = {"film": {"duration_s": 30.0, "locales": ["en-US", "es-ES"]}}


def frame(rows):
    return pd.DataFrame(rows, columns=list(fb.COLUMNS))


@pytest.fixture
def film():
    # four sessions in the US: stopped at 5 s, 15 s, 25 s and the end (30 s); one browsed without playing;
    # two in Spain: 29 s (>= 95 % of 30 s: complete) and 3 s
    rows = watched("film", "u1", 5) + watched("film", "u2", 15) + watched("film", "u3", 25) + watched("film", "u4", 30)
    rows += [ev("film", "u5", "impression")]
    rows += watched("film", "e1", 29, territory="ES", locale="es-ES") + watched(
        "film", "e2", 3, territory="ES", locale="es-ES"
    )
    return frame(rows)


def test_starts_completion_and_watch_share_per_title_and_territory(film):
    figures = fb.title_figures(fb.sessions(film, CATALOG)).set_index("territory")
    us, es = figures.loc["US"], figures.loc["ES"]
    assert us["starts"] == 4  # u5 never pressed play
    assert us["completion_rate"] == pytest.approx(1 / 4)
    assert us["avg_watch_share"] == pytest.approx((5 + 15 + 25 + 30) / 30 / 4)
    assert es["starts"] == 2
    assert es["completion_rate"] == pytest.approx(1 / 2)
    assert es["avg_watch_share"] == pytest.approx((29 + 3) / 30 / 2)


def test_a_seek_past_the_end_counts_as_the_end_and_unknown_duration_gives_no_share():
    rows = [ev("film", "s", "play"), ev("film", "s", "seek", 400.0)] + watched("other", "o", 50)
    figures = fb.title_figures(fb.sessions(frame(rows), CATALOG)).set_index("title")
    assert figures.loc["film", "avg_watch_share"] == 1.0 and figures.loc["film", "completion_rate"] == 1.0
    assert figures.loc["other", "starts"] == 1
    assert pd.isna(figures.loc["other", "avg_watch_share"]) and pd.isna(figures.loc["other", "completion_rate"])


def test_retention_in_2_percent_steps_of_the_title_shows_where_viewers_drop_off(film):
    curve = fb.retention(fb.sessions(film, CATALOG))
    us = curve[curve["territory"] == "US"].set_index("bucket")
    # 51 points 0.6 s apart over the 30-s film; the US sessions stopped at 5, 15, 25 and 30 s
    assert us.index.tolist() == list(range(51)) and us["position"].iloc[-1] == 1.0
    assert us["bucket_start_s"].tolist() == pytest.approx([0.6 * b for b in range(51)])
    assert (us["span_s"] == 30.0).all() and (us.loc[0, "retention"], us.loc[50, "retention"]) == (1.0, 0.25)
    assert us.loc[[8, 9, 25, 26, 41, 42], "retention"].tolist() == pytest.approx([1.0, 0.75, 0.75, 0.5, 0.5, 0.25])
    # a session that stopped exactly on a point (15 s = point 25) reached it
    left = us[us["drop_off"] > 0]  # where viewers left: after 4.8 s, 15 s and 24.6 s, and at the end
    assert left.index.tolist() == [8, 25, 41, 50] and left["drop_off"].tolist() == pytest.approx([0.25] * 4)
    es = curve[curve["territory"] == "ES"].set_index("bucket")["retention"]  # stopped at 3 s and 29 s
    assert es[[5, 6, 48, 49]].tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    ("duration", "labels", "unit"),
    [(6.0, ["0:00", "0:01", "0:02", "0:03", "0:04", "0:05", "0:06"], "m:ss"),
     (7200.0, ["0:00:00", "0:20:00", "0:40:00", "1:00:00", "1:20:00", "1:40:00", "2:00:00"], "h:mm:ss")],
)  # fmt: skip
def test_a_6_s_clip_and_a_2_hour_film_get_the_same_detail_on_a_time_axis(duration, labels, unit):
    """Half the viewers leave at 30 % of the title: a 6-s clip and a 2-hour film both show 51 points from 0 to
    their duration, the drop right there (1.8 s, 36 min), and a time axis labelled as a player shows time."""
    leave = 0.3 * duration
    rows = []
    for i in range(40):
        rows += watched("t", f"s{i}", leave if i % 2 else duration)
    catalog = {"t": {"duration_s": duration, "locales": []}}
    per = fb.title_retention(fb.retention(fb.sessions(frame(rows), catalog)))
    assert len(per) == 51 and per["bucket_start_s"].iloc[0] == 0.0
    assert per["bucket_start_s"].iloc[-1] == pytest.approx(duration)
    drop = per["retention"].diff().fillna(0.0)
    assert drop.idxmin() == 16 and per["bucket_start_s"].iloc[16] == pytest.approx(leave + duration / 50)
    assert per["retention"].iloc[15] == 1.0 and per["retention"].iloc[16:].tolist() == pytest.approx([0.5] * 35)
    svg = fb.retention_svg(per)
    assert re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', svg) == labels
    assert f"({unit})" in svg
    points = re.search(r'points="([^"]*)"', svg).group(1).split()
    assert len(set(points)) == 51 and "<circle" not in svg
    xs = [float(p.split(",")[0]) for p in points]
    assert xs == sorted(xs) and xs[0] < xs[-1]  # the curve runs from the axis' 0 to its end
    assert fb.report_html({"retention": fb.retention(fb.sessions(frame(rows), catalog)),
                           "figures": pd.DataFrame(columns=["title"]), "recommendations": [], "ab": {}},
                          generated_at="2026-11-28T00:00:00Z").count("<polyline") == 1  # fmt: skip


@pytest.mark.parametrize(
    ("span", "first", "last", "count"),
    [(0.8, "0:00.0", "0:00.8", 5), (2.0, "0:00", "0:02", 3), (90.0, "0:00", "1:30", 7), (100.0, "0:00", "1:30", 4),
     (3599.0, "0:00", "50:00", 6), (5400.0, "0:00:00", "1:30:00", 7), (36000.0, "0:00:00", "10:00:00", 6)],
)  # fmt: skip
def test_time_axis_ticks_read_like_a_player(span, first, last, count):
    from mediaflow.feedback.render import time_ticks

    ticks = time_ticks(span)
    assert (ticks[0][1], ticks[-1][1], len(ticks)) == (first, last, count)
    assert ticks[-1][0] <= span and all(b[0] > a[0] for a, b in zip(ticks, ticks[1:], strict=False))


def test_a_title_nobody_published_spans_to_the_furthest_position_seen():
    rows = watched("unknown", "a", 40.0) + watched("unknown", "b", 10.0)
    per = fb.title_retention(fb.retention(fb.sessions(frame(rows), {})))
    assert len(per) == 51 and per["span_s"].iloc[0] == 40.0 and per["retention"].iloc[-1] == 0.5


def test_a_retention_curve_written_before_the_2_percent_points_still_reads():
    old = pd.DataFrame({"title": "film", "territory": ["US", "US", "US", "ES", "ES", "ES"], "bucket": [0, 1, 2] * 2,
                        "bucket_start_s": [0.0, 10.0, 20.0] * 2, "viewers": [4, 3, 2, 2, 1, 1],
                        "retention": 0.0, "drop_off": 0.0})  # fmt: skip
    per = fb.title_retention(old)
    assert per["retention"].tolist() == pytest.approx([1.0, 4 / 6, 3 / 6]) and per["span_s"].iloc[0] == 20.0
    assert "0:20" in fb.retention_svg(per)


def test_demand_for_a_locale_the_title_lacks():
    rows = []
    for i in range(25):  # 25 starts in Brazil in pt-BR: the film has no pt-BR captions or audio
        rows += watched("film", f"b{i}", 20, territory="BR", locale="pt-BR")
    for i in range(5):  # 5 in the US in fr-FR: demand, but below the recommendation threshold
        rows += watched("film", f"f{i}", 20, territory="US", locale="fr-FR")
    for i in range(30):  # es-ES is published: no demand
        rows += watched("film", f"s{i}", 20, territory="US", locale="es-ES")
    sess = fb.sessions(frame(rows), CATALOG)
    demand = fb.locale_demand(sess, CATALOG)
    assert demand[["territory", "locale", "starts", "titles"]].values.tolist() == [
        ["BR", "pt-BR", 25, 1],
        ["US", "fr-FR", 5, 1],
    ]
    recs = fb.recommendations(sess, CATALOG, min_starts=20)
    assert [(r["asset_id"], r["territory"], r["locale"], r["starts"], r["share"]) for r in recs] == [
        ("film", "BR", "pt-BR", 25, 1.0)
    ]


def test_catalog_entry_from_the_published_state():
    state = {"source": {"duration_s": 125.5}, "locales": {"captions:es-ES": {}, "audio:fr-FR": {}}}
    assert fb.catalog_entry(state, original_locale="en-US") == {
        "duration_s": 125.5,
        "locales": ["en-US", "es-ES", "fr-FR"],
    }
    assert fb.catalog_entry(None) == {"duration_s": None, "locales": []}


def test_wilson_interval_and_z_test_known_values():
    assert fb.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert fb.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    # 10 % vs 20 % of 500: z = 0.1 / sqrt(0.15 * 0.85 * 2 / 500) = 4.428
    assert fb.two_proportion_p(50, 500, 100, 500) == pytest.approx(9.5e-6, rel=0.05)
    # 10 % vs 11 %: pooled 0.105, se 0.019388, z = 0.5158
    assert fb.two_proportion_p(50, 500, 55, 500) == pytest.approx(0.606, abs=1e-3)


def ab_events(title, counts):
    """counts: {variant: (impressions, clicks)} -> one session per impression, the first `clicks` of them play."""
    rows = []
    for variant, (n, clicks) in counts.items():
        for i in range(n):
            s = f"{variant}{i}"
            rows.append(ev(title, s, "impression", poster=variant))
            if i < clicks:
                rows.append(ev(title, s, "play"))
    return frame(rows)


def decide(counts, **kw):
    return fb.ab_decisions(fb.poster_variants(ab_events("film", counts)), **kw)["film"]


def test_click_through_per_poster_variant():
    variants = fb.poster_variants(ab_events("film", {"a": (10, 5), "b": (10, 0)})).set_index("poster")
    assert variants.loc["a", ["impressions", "clicks"]].tolist() == [10, 5]
    assert variants.loc["a", "ctr"] == 0.5 and variants.loc["b", "ctr"] == 0.0
    assert variants.loc["a", "ctr_low"] == pytest.approx(0.2366, abs=1e-4)


def test_ab_declares_no_winner_on_noise():
    d = decide({"a": (500, 50), "b": (500, 55)})
    assert d["winner"] is None and d["best"] == "b" and "not significant" in d["reason"]


def test_ab_declares_the_winner_on_a_clear_difference():
    d = decide({"a": (500, 50), "b": (500, 100)})
    assert d["winner"] == "b" and d["p_value"] < 0.001


def test_ab_needs_a_minimum_sample_even_when_the_difference_looks_large():
    d = decide({"a": (20, 2), "b": (20, 15)})
    assert d["winner"] is None and "too few impressions" in d["reason"]


def test_ab_with_three_variants_must_beat_each_other_one():
    # c beats a clearly but b only by noise: no winner
    d = decide({"a": (500, 50), "b": (500, 95), "c": (500, 100)})
    assert d["best"] == "c" and d["winner"] is None


def test_ab_on_synthetic_noise_never_declares_a_winner_across_seeds():
    winners = 0
    for seed in range(10):
        events = fb.synthetic_events([{"asset_id": "film", "duration_s": 60, "territories": ["US"], "locales": ["en-US"],
                                       "posters": {"a": 0.2, "b": 0.2}}], seed=seed, sessions_per_title=400)  # fmt: skip
        winners += fb.ab_decisions(fb.poster_variants(events))["film"]["winner"] is not None
    assert winners <= 1  # alpha = 0.05: at most one false positive in ten is tolerated


def test_priorities_score_titles_and_series_by_watch_share():
    catalog = {t: {"duration_s": 100.0, "locales": ["en-US"]} for t in ("show-s01e01", "show-s01e02", "doc", "rare")}
    rows = []
    for i in range(20):
        rows += watched("show-s01e01", f"a{i}", 90)  # 0.9
        rows += watched("doc", f"d{i}", 30)  # 0.3
    for i in range(30):
        rows += watched("show-s01e02", f"b{i}", 40)  # 0.4
    rows += watched("rare", "r", 100)  # one start: not scored
    table = fb.priorities(fb.sessions(frame(rows), catalog), min_starts=20)
    assert table["titles"] == pytest.approx({"show-s01e01": 0.9, "show-s01e02": 0.4, "doc": 0.3})
    assert table["series"] == pytest.approx({"show": (20 * 0.9 + 30 * 0.4) / 50})
    assert fb.score_of(table, "show-s01e03") == pytest.approx(0.6)  # the next episode inherits its series' score
    assert fb.score_of(table, "doc") == pytest.approx(0.3)
    assert fb.score_of(table, "new-film") is None and fb.score_of(None, "doc") is None


def test_synthetic_events_are_reproducible_and_drop_off_over_time():
    spec = [
        {"asset_id": "film", "duration_s": 300, "territories": ["US", "GB"], "locales": ["en-US"], "drop_per_min": 0.5}
    ]
    a, b = fb.synthetic_events(spec, seed=3), fb.synthetic_events(spec, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["event"]) == {"play", "pause", "stop"}
    curve = fb.retention(fb.sessions(a, {"film": {"duration_s": 300, "locales": []}}))
    us = curve[curve["territory"] == "US"]["retention"].tolist()
    assert us[0] == 1.0 and us == sorted(us, reverse=True) and us[-1] < 0.2


def test_the_nightly_batch_orders_by_feedback_within_a_manifest_priority():
    from mediaflow import batch

    def row(delivery_id, asset_id, priority="normal", at="2026-11-28T01:00:00Z"):
        return {"delivery_id": delivery_id, "asset_id": asset_id, "priority": priority, "delivered_at": at}

    valid = [row("d1", "doc", at="2026-11-28T00:00:00Z"), row("d2", "flop-s01e02"), row("d3", "hit-s02e05"),
             row("d4", "news", priority="urgent", at="2026-11-28T03:00:00Z"), row("d5", "unseen")]  # fmt: skip
    assert [r["delivery_id"] for r in batch.plan(valid, cap=10)[0]] == ["d4", "d1", "d2", "d3", "d5"]
    table = {"titles": {"doc": 0.3}, "series": {"hit": 0.9, "flop": 0.2}}
    started, later = batch.plan(valid, cap=3, priorities=table)
    # urgent stays first; then the next episode of the high-retention series, the doc, the weak series, the unseen
    assert [r["delivery_id"] for r in started] == ["d4", "d3", "d1"] and [r["delivery_id"] for r in later] == [
        "d2",
        "d5",
    ]
    assert batch.plan(valid, cap=10, priorities=None) == batch.plan(valid, cap=10)  # no table: today's order


def test_the_report_shows_retention_recommendations_and_the_ab_decision(film):
    rows = film.to_dict("records")
    for i in range(25):
        rows += watched("film", f"b{i}", 20, territory="BR", locale="pt-BR")
    events = pd.concat([frame(rows), ab_events("film", {"a": (200, 20), "b": (200, 60)})], ignore_index=True)
    result = fb.compute(events, CATALOG)
    per = fb.title_retention(result["retention"])
    # 111 starts: 80 A/B clicks (stopped at 0 s), US 4 (5, 15, 25, 30 s), ES 2 (3, 29 s), BR 25 (20 s);
    # points 0.6 s apart: 0 s, 0.6 s, 3.6 s, 5.4 s, 15.6 s, 20.4 s, 25.2 s, 29.4 s, 30 s
    at = per["retention"].iloc[[0, 1, 6, 9, 26, 34, 42, 49, 50]].tolist()
    assert per["starts"].iloc[0] == 111 and at == pytest.approx([n / 111 for n in (111, 31, 30, 29, 28, 3, 2, 1, 1)])
    page = fb.report_html(result, generated_at="2026-11-28T00:00:00Z")
    assert page.count("<svg") == 1 and "<polyline" in page and "(111 starts, 0:30)" in page
    assert "pt-BR" in page and "add captions or audio in pt-BR" in page
    assert "<b>winner</b>" in page and "significant (p " in page


def test_make_runs_synthetic_audience_watches_the_published_titles():
    assets = [
        {"asset_id": "sample-audio", "status": "published", "value_stream": "news_clip", "source": {"duration_s": 30.0},
         "published": [{"territories": ["US"]}]},
        {"asset_id": "sample-feature", "status": "published", "value_stream": "feature_film",
         "source": {"duration_s": 12.0, "video": {"width": 1920, "height": 1080}},
         "locales": {"es-ES": "published", "pt-BR": "rejected: bad cue"}, "published": [{"territories": ["US", "ES"]}]},
        {"asset_id": "sample-broken", "status": "rejected", "source": {"duration_s": 5.0}},
        {"asset_id": "show-s01e01", "status": "published", "value_stream": "series_episode", "source": {"duration_s": 8.0},
         "published": []},
    ]  # fmt: skip
    titles = fb.demo_titles(assets)
    assert [t["asset_id"] for t in titles] == ["sample-audio", "sample-feature", "show-s01e01"]
    audio, feature, episode = titles
    assert feature["territories"] == ["ES", "US"] and feature["locales"] == ["en-US", "es-ES", "pt-BR"]
    assert feature["posters"] == {"p1": 0.45, "p2": 0.7}, "the poster test needs a title with pictures"
    assert "posters" not in audio and "posters" not in episode and episode["territories"] == ["US"]
    result = fb.compute(fb.synthetic_events(titles, seed=7, sessions_per_title=400), {
        "sample-audio": {"duration_s": 30.0, "locales": ["en-US"]},
        "sample-feature": {"duration_s": 12.0, "locales": ["en-US", "es-ES"]},
        "show-s01e01": {"duration_s": 8.0, "locales": ["en-US"]}})  # fmt: skip
    assert {r["locale"] for r in result["recommendations"]} == {"pt-BR"}
    assert result["ab"]["sample-feature"]["winner"] == "p2"  # 45 % vs 70 % over ~200 impressions each


def test_a_retention_chart_of_one_bucket_still_shows_its_point():
    one = fb.retention_svg(pd.DataFrame({"bucket_start_s": [0.0], "retention": [1.0]}))
    assert "<circle" in one, "a title under 10 s: a line of no length would show nothing"
    many = fb.retention_svg(pd.DataFrame({"bucket_start_s": [0.0, 10.0, 20.0], "retention": [1.0, 0.8, 0.5]}))
    assert "<circle" not in many and len(re.search(r'points="([^"]*)"', many).group(1).split()) == 3
    assert "0:20" in many


def test_p_values_read_as_people_write_them():
    assert fb.p_text(0.0123) == "p = 0.0123" and fb.p_text(0.2) == "p = 0.2"
    assert fb.p_text(0.0) == "p < 0.0001" and fb.p_text(3e-9) == "p < 0.0001", "never an underflowed p = 0"
    d = fb.ab_decisions(fb.poster_variants(ab_events("film", {"a": (600, 60), "b": (600, 300)})))["film"]
    assert d["winner"] == "b" and d["reason"] == "significant (p < 0.0001 < 0.05)"
