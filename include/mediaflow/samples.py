"""Sample deliveries made with ffmpeg's lavfi sources: real media, no downloads, same bytes every time.

Usage: python -m mediaflow.samples OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TONE = "sine=frequency=1000:sample_rate=48000"  # about -18 dBFS, like a line-up tone


def _ffmpeg(*args: str) -> None:
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sample generation failed: {' '.join(argv)}\n{proc.stderr}")


def make_video(path: Path, *, width: int, height: int, fps: int, seconds: float, audio: bool = True,
               video_kbps: int | None = None) -> None:
    """H.264 (+ AAC) test pattern; video_kbps gives a constant-bitrate mezzanine instead of CRF 18."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"{TONE}:duration={seconds}"]
    rate = ["-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{video_kbps * 2}k"] if video_kbps else ["-crf", "18"]
    codec = ["-c:v", "libx264", "-preset", "ultrafast", *rate, "-pix_fmt", "yuv420p", "-g", str(fps)]
    if audio:
        codec += ["-c:a", "aac", "-b:a", "192k", "-ac", "2"]
    _ffmpeg(*inputs, *codec, "-movflags", "+faststart", "-fflags", "+bitexact", "-map_metadata", "-1", str(path))


def make_audio(path: Path, *, seconds: float) -> None:
    _ffmpeg("-f", "lavfi", "-i", f"{TONE}:duration={seconds}", "-ac", "2", "-c:a", "pcm_s16le", "-fflags", "+bitexact", str(path))


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _manifest(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(fields, indent=2) + "\n")


SAMPLES = {
    # delivery id: (asset id, title, value stream, maker)
    "sample-feature-1080p": ("sample-feature-1080p", "Test Pattern: Feature 1080p", "feature_film"),
    "sample-news-720p": ("sample-news-720p", "Test Pattern: News 720p", "news_clip"),
    "sample-vertical-portrait": ("sample-vertical-portrait", "Test Pattern: Vertical Clip", "news_clip"),
    "sample-podcast-audio": ("sample-podcast-audio", "Test Tone: Podcast Episode", "news_clip"),
    "sample-broken-truncated": ("sample-broken-truncated", "Broken Upload: Truncated Source", "series_episode"),
    # series_episode asks for legal review by a person: this one waits in awaiting_review
    "sample-episode-review": ("sample-episode-review", "Test Pattern: Episode Awaiting Legal Review", "series_episode"),
    # its GB rights window has closed (include/rights/avails.csv): legal review, then US only
    "sample-rights-closed-gb": ("sample-rights-closed-gb", "Test Pattern: Closed GB Window", "news_clip"),
}


VERSION = "4"  # bump when the samples change, so an existing sample folder is made anew


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _cues(seconds: float) -> list[tuple[float, float]]:
    return [(t, min(t + 1.8, seconds - 0.1)) for t in [0.5 + 2.0 * i for i in range(int((seconds - 0.6) // 2.0))]]


def write_captions(folder: Path, seconds: float) -> list[dict]:
    """Sidecars as vendors send them: WebVTT (UTF-8), SRT in Windows-1252, TTML."""
    en = ["Previously, on Test Pattern...", "The colours are calibrated.", "Listen: the tone is steady.", "See you next week."]
    es = ["Anteriormente, en Patrón de Prueba...", "¿Dónde está el niño?", "Canción de café, señal estable.", "¡Hasta la próxima!"]
    de = ["Was bisher geschah...", "Die Farben sind kalibriert.", "Hören Sie: ein gleichmäßiger Ton.", "Bis nächste Woche."]
    cues = _cues(seconds)
    vtt = ["WEBVTT", ""]
    srt = []
    ttml = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<tt xmlns="http://www.w3.org/ns/ttml" xmlns:tts="http://www.w3.org/ns/ttml#styling" xml:lang="de">',
            "<body><div>"]  # fmt: skip
    for i, (start, end) in enumerate(cues):
        vtt += [f"{_srt_time(start).replace(',', '.')} --> {_srt_time(end).replace(',', '.')} line:85%", en[i % 4], ""]
        srt += [str(i + 1), f"{_srt_time(start)} --> {_srt_time(end)}", es[i % 4], ""]
        ttml.append(f'<p begin="{start:.3f}s" end="{end:.3f}s">{de[i % 4]}</p>')
    ttml += ["</div></body>", "</tt>"]
    (folder / "en-US.vtt").write_text("\n".join(vtt), encoding="utf-8")
    (folder / "es-ES.srt").write_bytes("\r\n".join(srt).encode("cp1252"))  # a legacy Windows tool's output
    (folder / "de-DE.ttml").write_text("\n".join(ttml), encoding="utf-8")
    return [{"locale": "en-US", "file": "en-US.vtt"}, {"locale": "es-ES", "file": "es-ES.srt"},
            {"locale": "de-DE", "file": "de-DE.ttml"}]  # fmt: skip


def generate(out_dir: str | Path, *, seconds: float = 8.0) -> list[Path]:
    """Write the sample deliveries under out_dir (skipping ones already there); return their folders."""
    out_dir = Path(out_dir)
    marker = out_dir / ".samples-version"
    if out_dir.exists() and (not marker.exists() or marker.read_text().strip() != VERSION):
        for old in SAMPLES:
            shutil.rmtree(out_dir / old, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(VERSION)
    folders = []
    for delivery_id, (asset_id, title, stream) in SAMPLES.items():
        folder = out_dir / delivery_id
        folders.append(folder)
        if (folder / "manifest.json").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        extra: dict = {}
        if delivery_id == "sample-feature-1080p":
            source = "feature.mp4"
            make_video(folder / source, width=1920, height=1080, fps=25, seconds=seconds)
            extra["captions"] = write_captions(folder, seconds)
            _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=48000:duration={seconds}", "-ac", "2",
                    "-c:a", "pcm_s16le", "-fflags", "+bitexact", str(folder / "fr-FR.wav"))  # fmt: skip
            extra["audio"] = [{"locale": "fr-FR", "file": "fr-FR.wav"}]
        elif delivery_id == "sample-news-720p":
            source = "news.mp4"
            make_video(folder / source, width=1280, height=720, fps=30, seconds=seconds)
            # a vendor's caption file with a broken timestamp: this locale is rejected, the clip still publishes
            (folder / "pt-BR.srt").write_text("1\n00:00:01,000 --> 00:00:03,000\nBoa noite.\n\n"
                                              "2\n00:00:04,000 --> 00:00:0x,500\nÚltimas notícias.\n")  # fmt: skip
            extra["captions"] = [{"locale": "pt-BR", "file": "pt-BR.srt"}]
        elif delivery_id == "sample-vertical-portrait":
            source = "vertical.mp4"
            make_video(folder / source, width=720, height=1280, fps=30, seconds=seconds)
        elif delivery_id == "sample-podcast-audio":
            source = "episode.wav"
            make_audio(folder / source, seconds=seconds)
        elif delivery_id in ("sample-episode-review", "sample-rights-closed-gb"):
            source = "clip.mp4"
            make_video(folder / source, width=640, height=360, fps=25, seconds=min(seconds, 6.0))
        else:
            source = "broken.mp4"
            make_video(folder / source, width=1280, height=720, fps=25, seconds=seconds)
            truncate(folder / source, 0.4)  # an upload cut short: ffprobe still reads the header
        _manifest(
            folder,
            asset_id=asset_id,
            title=title,
            value_stream=stream,
            source={"file": source},
            territories=["US", "GB"],
            channels=["web"],
            metadata={"generated_by": "mediaflow.samples"},
            **extra,
        )
    return folders


if __name__ == "__main__":
    for f in generate(sys.argv[1] if len(sys.argv) > 1 else "samples"):
        print(f)
