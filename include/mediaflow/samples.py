"""Sample deliveries made with ffmpeg's lavfi sources: real media, no downloads, same bytes every time.

Usage: python -m mediaflow.samples OUT_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TONE = "sine=frequency=1000:sample_rate=48000"  # about -18 dBFS, like a line-up tone


def _ffmpeg(*args: str) -> None:
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sample generation failed: {' '.join(argv)}\n{proc.stderr}")


def make_video(path: Path, *, width: int, height: int, fps: int, seconds: float, audio: bool = True) -> None:
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"{TONE}:duration={seconds}"]
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-g", str(fps)]
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
    "sample-feature-1080p": ("sample-feature-1080p", "Test Pattern: Feature 1080p", "series_episode"),
    "sample-news-720p": ("sample-news-720p", "Test Pattern: News 720p", "news_clip"),
    "sample-vertical-portrait": ("sample-vertical-portrait", "Test Pattern: Vertical Clip", "news_clip"),
    "sample-podcast-audio": ("sample-podcast-audio", "Test Tone: Podcast Episode", "series_episode"),
    "sample-broken-truncated": ("sample-broken-truncated", "Broken Upload: Truncated Source", "series_episode"),
}


def generate(out_dir: str | Path, *, seconds: float = 8.0) -> list[Path]:
    """Write the five sample deliveries under out_dir (skipping ones already there); return their folders."""
    out_dir = Path(out_dir)
    folders = []
    for delivery_id, (asset_id, title, stream) in SAMPLES.items():
        folder = out_dir / delivery_id
        folders.append(folder)
        if (folder / "manifest.json").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if delivery_id == "sample-feature-1080p":
            source = "feature.mp4"
            make_video(folder / source, width=1920, height=1080, fps=25, seconds=seconds)
        elif delivery_id == "sample-news-720p":
            source = "news.mp4"
            make_video(folder / source, width=1280, height=720, fps=30, seconds=seconds)
        elif delivery_id == "sample-vertical-portrait":
            source = "vertical.mp4"
            make_video(folder / source, width=720, height=1280, fps=30, seconds=seconds)
        elif delivery_id == "sample-podcast-audio":
            source = "episode.wav"
            make_audio(folder / source, seconds=seconds)
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
        )
    return folders


if __name__ == "__main__":
    for f in generate(sys.argv[1] if len(sys.argv) > 1 else "samples"):
        print(f)
