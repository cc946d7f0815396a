"""Localization per locale: BCP-47 codes, caption sidecars to (segmented) WebVTT, extra audio tracks to AAC HLS.

One locale's bad input rejects that locale only: the functions return a result with a status and reasons, and
the title publishes without it.
"""

from __future__ import annotations

from pathlib import Path

import langcodes

from mediaflow import captions, ladder, media
from mediaflow import loudness as loudness_passes

SUBS_PREFIX, AUDIO_PREFIX = "subs_", "audio_"
AUDIO_DRIFT_S = 1.0  # an extra audio track longer or shorter than the video by more than this is flagged
MAX_WARNINGS = 20  # per locale: the rest are counted (they travel in XCom and summary.json)


def valid_locale(tag: str) -> bool:
    """A BCP-47 tag with a known language, e.g. es-ES, fr, pt-BR, zh-Hant-TW."""
    if not tag or "_" in tag:  # langcodes forgives en_US; HLS LANGUAGE and players do not
        return False
    try:
        return langcodes.tag_is_valid(tag) and langcodes.Language.get(tag).is_valid()
    except (ValueError, langcodes.LanguageTagError):
        return False


def display_name(tag: str) -> str:
    """The locale's name in its own language (what a viewer picks from the player's menu)."""
    try:
        name = langcodes.Language.get(tag).display_name(tag)
        return name[:1].upper() + name[1:]
    except Exception:  # noqa: BLE001 - langcodes' name data may lack a rare tag: the tag is still a usable name
        return tag


def rendition_dir(kind: str, locale: str) -> str:
    return f"{SUBS_PREFIX if kind == 'captions' else AUDIO_PREFIX}{locale}"


def captions_to_hls(src: Path, out_dir: Path, *, locale: str, duration_s: float, max_cps: float = 20.0,
                    max_line_chars: int = 42) -> dict:  # fmt: skip
    """Sidecar -> WebVTT (whole file) + segmented WebVTT subtitle playlist in out_dir/subs_<locale>/."""
    cues = captions.read_captions(src)  # CaptionError names the file and cue
    findings = captions.qc(cues, file=src.name, media_duration_s=duration_s, max_cps=max_cps,
                           max_line_chars=max_line_chars)  # fmt: skip
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise captions.CaptionError(errors)
    target = out_dir / rendition_dir("captions", locale)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{locale}.vtt").write_text(captions.to_webvtt(cues), encoding="utf-8")
    playlist, segments = captions.segment_webvtt(cues, segment_s=ladder.SEGMENT_S, duration_s=duration_s)
    for name, text in segments:
        (target / name).write_text(text, encoding="utf-8")
    (target / "index.m3u8").write_text(playlist)
    warnings = [f.message for f in findings if f.level == "warning"]
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"{src.name}: ... and {len(warnings) - MAX_WARNINGS} more warnings"]
    return {
        "rendition": {"uri": f"{target.name}/index.m3u8", "language": locale, "name": display_name(locale)},
        "warnings": warnings,
        "cues": len(cues),
    }


def audio_to_hls(src: Path, out_dir: Path, *, locale: str, duration_s: float, loudness, run_ffmpeg) -> dict:
    """Extra language track -> loudness-normalised stereo AAC HLS rendition in out_dir/audio_<locale>/ (the
    normaliser's record under `normalised`: mode, passes, figures)."""
    facts = media.inspect_source(src, min_duration_s=0.0)  # MediaError names the file
    if not facts["audio_streams"]:
        raise media.MediaError(f"{src.name}: has no audio stream")
    warnings = list(facts.pop("warnings", []))  # decode errors the decoder concealed, within the tolerated share
    drift = facts["duration_s"] - duration_s
    if abs(drift) > AUDIO_DRIFT_S:
        warnings.append(
            f"{src.name}: audio is {abs(drift):.1f}s {'longer' if drift > 0 else 'shorter'} than the video "
            f"({facts['duration_s']:.1f}s vs {duration_s:.1f}s); {'cut' if drift > 0 else 'padded with silence'} to fit"
        )
    target = out_dir / rendition_dir("audio", locale)
    measured = loudness_passes.measure(
        src, chain=loudness_passes.DOWNMIX, name=src.name, duration_s=facts["duration_s"]
    )  # as it will be heard
    first = loudness_passes.first_pass(measured, target_lufs=loudness.target_lufs,
                                       true_peak_dbtp=loudness.true_peak_dbtp)  # fmt: skip
    normalised = loudness_passes.normalise_rendition(
        target, first=first, source=measured, target_lufs=loudness.target_lufs,
        true_peak_dbtp=loudness.true_peak_dbtp, run_ffmpeg=run_ffmpeg,
        make_argv=lambda d, f: ladder.locale_audio_argv(src, d, loudness=loudness, duration_s=duration_s, audio_filter=f),
    )  # fmt: skip
    peak, avg = ladder.playlist_bandwidth(target / "index.m3u8")
    return {
        "rendition": {
            "uri": f"{target.name}/index.m3u8",
            "language": locale,
            "name": display_name(locale),
            "peak_bps": peak,
            "avg_bps": avg,
        },  # fmt: skip
        "warnings": warnings,
        "loudness": facts["loudness"],
        "normalised": normalised,
    }
