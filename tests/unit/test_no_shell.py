"""ffmpeg (and every other process) is started from an argv list, never a shell string.

An AST scan of include/, plugins/ and tools/ finds every call that starts a process and checks what it is given; the
argv builders are called with hostile file names, which must come back unchanged, one element each; and real ffprobe,
ffmpeg and FFmpegHook run on such a file without a shell ever seeing it.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediaflow import ladder, loudness, media, qc
from mediaflow.spec import Loudness
from mediaflow_dev import samples

PROJECT = Path(__file__).resolve().parents[2]
SCANNED = [PROJECT / "include", PROJECT / "plugins", PROJECT / "tools"]

# what a shell would act on: command separators, substitutions, globbing, quotes, whitespace, a newline
HOSTILE = ["a;rm -rf ~", "$(id)", "`id`", "two  spaces & more", "new\nline", 'it\'s "quoted" *?', "x|y>z"]

SPAWNERS = {  # module -> functions whose first argument is the program to run
    "subprocess": {"run", "Popen", "call", "check_call", "check_output"},
    "asyncio": {"create_subprocess_exec"},
}
SHELL_ONLY = {  # these always go through a shell: never allowed
    "os": {"system", "popen"},
    "asyncio": {"create_subprocess_shell"},
    "subprocess": {"getoutput", "getstatusoutput"},
}
HOOK_METHODS = {
    "run_command"
}  # SubprocessHook.run_command(command, ...): Popen(command) without a shell only for a list


# ---------------------------------------------------------------- the AST scan


def _sources() -> list[Path]:
    return sorted(p for root in SCANNED for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _aliases(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute) for `import subprocess as sp` and `from subprocess import run`."""
    names: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name] = (a.name, None)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = (node.module, a.name)
    return names


def _target(call: ast.Call, aliases) -> tuple[str, str] | None:
    """(module, function) a call resolves to, for calls on a module (`subprocess.run`) or an imported name (`run`)."""
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        module, attr = aliases.get(f.value.id, (f.value.id, None))
        return (module if attr is None else f"{module}.{attr}", f.attr)
    if isinstance(f, ast.Name) and f.id in aliases and aliases[f.id][1]:
        return aliases[f.id]
    return None


def _enclosing(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    """node -> the innermost function (or the module) it is in."""
    owner: dict[ast.AST, ast.AST] = {}

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            owner[child] = scope
            visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else scope)

    visit(tree, tree)
    return owner


def _is_argv_builder(call: ast.AST) -> bool:
    f = call.func if isinstance(call, ast.Call) else None
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name.endswith("_argv")


def _listy(node: ast.AST, scope: ast.AST, seen: frozenset[str] = frozenset()) -> bool:
    """Whether an expression is certainly a list of arguments: a list display or comprehension, a call to a tested
    `*_argv` builder, lists added together, a parameter annotated list[str], or a name only ever bound to those."""
    if isinstance(node, (ast.List, ast.ListComp)):
        return True
    if isinstance(node, ast.Call):
        return _is_argv_builder(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _listy(node.left, scope, seen) and _listy(node.right, scope, seen)
    if isinstance(node, ast.Name) and node.id not in seen:
        return _name_is_listy(node.id, scope, seen | {node.id})
    return False


def _name_is_listy(name: str, scope: ast.AST, seen: frozenset[str]) -> bool:
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for arg in [*scope.args.posonlyargs, *scope.args.args, *scope.args.kwonlyargs]:
            if arg.arg == name:
                return arg.annotation is not None and ast.unparse(arg.annotation) in ("list[str]", "List[str]")
    bindings = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            bindings.append(node.value)
        elif (
            isinstance(node, (ast.AnnAssign, ast.AugAssign))
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            if node.value is not None:
                bindings.append(node.value)
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and node.target.id == name:
            if not isinstance(node.iter, (ast.Tuple, ast.List)):
                return False
            bindings.extend(node.iter.elts)  # `for argv in ([...], [...])`: each item is what it is bound to
    return bool(bindings) and all(_listy(b, scope, seen) for b in bindings)


def _check_call(call: ast.Call, target: tuple[str, str] | None, scope: ast.AST) -> str | None:
    """Why this call may reach a shell, or None when it starts its program from an argv list without one."""
    if target and target[1] in SHELL_ONLY.get(target[0], ()):
        return f"{target[0]}.{target[1]} always runs a shell"
    for kw in call.keywords:
        if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
            return "shell= is set"
    if target and target[0] == "asyncio":  # create_subprocess_exec(program, *args): argv by construction
        return None if not call.args or not isinstance(call.args[0], ast.JoinedStr) else "program is a formatted string"
    argv = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg in ("args", "command")), None)
    if argv is None:
        return "no argv given"
    if not _listy(argv, scope):
        return f"argv {ast.unparse(argv)!r} is not certainly a list"
    return None


def _process_calls() -> list[tuple[str, int, str, str | None]]:
    """Every call that starts a process: (file, line, call, problem or None)."""
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases, owner = _aliases(tree), _enclosing(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            target = _target(node, aliases)
            spawns = target is not None and (
                target[1] in SPAWNERS.get(target[0], ()) or target[1] in SHELL_ONLY.get(target[0], ())
                or (target[0] == "os" and target[1].startswith(("exec", "spawn")))
            )  # fmt: skip
            hook = isinstance(node.func, ast.Attribute) and node.func.attr in HOOK_METHODS
            if spawns or hook:
                where = f"{path.relative_to(PROJECT)}:{node.lineno}"
                found.append((where, node.lineno, ast.unparse(node.func), _check_call(node, target, owner[node])))
    return found


def test_every_process_is_started_from_an_argv_list_without_a_shell():
    calls = _process_calls()
    # the scan must see the calls we know of, or it proves nothing
    seen = {(w.split(":")[0], c) for w, _, c, _ in calls}
    assert ("include/mediaflow/ffrun.py", "subprocess.Popen") in seen, "the one ffmpeg/ffprobe runner"
    assert ("tools/mediaflow_dev/devstack.py", "subprocess.Popen") in seen
    problems = [f"{where}: {call}(...): {why}" for where, _, call, why in calls if why]
    assert problems == []


@pytest.mark.parametrize(
    "code, why",
    [
        ("import subprocess\nsubprocess.run('ffmpeg -i ' + name)", "not certainly a list"),
        ("import subprocess\nsubprocess.run(f'ffmpeg -i {name}')", "not certainly a list"),
        ("import subprocess\nsubprocess.Popen(['ffmpeg', name], shell=True)", "shell= is set"),
        ("from subprocess import check_output as co\nco('ls ' + d)", "not certainly a list"),
        ("import os\nos.system('ffmpeg')", "always runs a shell"),
        ("import asyncio\nasyncio.create_subprocess_shell('ffmpeg')", "always runs a shell"),
        ("def f(cmd: str):\n    hook.run_command(cmd)", "not certainly a list"),
        ("def f():\n    argv = 'ffmpeg -i x'\n    import subprocess\n    subprocess.run(argv)", "not certainly a list"),
    ],
)
def test_the_scan_catches_a_shell_string(code, why):
    tree = ast.parse(code)
    aliases, owner = _aliases(tree), _enclosing(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (_target(n, aliases) or _is_hook(n))]
    problems = [_check_call(n, _target(n, aliases), owner[n]) for n in calls]
    assert any(p and why in p for p in problems), problems


def _is_hook(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Attribute) and node.func.attr in HOOK_METHODS


# ---------------------------------------------------------------- the argv builders, with hostile file names


def _builders() -> set[str]:
    """Every `*_argv` function of the domain library: a new one must be added to BUILDERS below."""
    return {f"{m.__name__.split('.')[-1]}.{name}" for m in (media, qc, loudness, ladder, samples)
            for name, fn in inspect.getmembers(m, inspect.isfunction) if name.endswith("_argv") and fn.__module__ == m.__name__}  # fmt: skip


RUNG = ladder.Rendition(name="v720", width=1280, height=720, video_kbps=2500)
LOUD = Loudness(target_lufs=-23, true_peak_dbtp=-1)

QC_META = "/tmp/mediaflow-qcmeta-x"
BUILDERS = {  # name -> (src, out) -> argv
    "media.ffprobe_argv": lambda src, out: media.ffprobe_argv(src),
    "media.decode_argv": lambda src, out: media.decode_argv(src, has_video=True, has_audio=True),
    "media.extract_captions_argv": lambda src, out: media.extract_captions_argv(src, out / "cc.vtt", "track"),
    "media.head_packets_argv": lambda src, out: media.head_packets_argv(src, stream_index=0),
    "media.from_keyframe_argv": lambda src, out: media.from_keyframe_argv(
        src, out / "prepared.ts", video_index=3, audio_index=5, muxer="mpegts"
    ),
    # the metadata files go to a folder of our own (a temporary one), never beside a delivered file
    "qc.detect_argv": lambda src, out: qc.detect_argv(src, has_video=True, has_audio=True, metadata_dir=QC_META),
    "loudness.measure_argv": lambda src, out: loudness.measure_argv(src),
    "ladder.transcode_argv": lambda src, out: ladder.transcode_argv(
        src, out, [RUNG], fps=25.0, interlaced=True, has_audio=True, loudness=LOUD, duration_s=4.0
    ),  # fmt: skip
    "ladder.locale_audio_argv": lambda src, out: ladder.locale_audio_argv(src, out, loudness=LOUD, duration_s=4.0),
    "ladder.audio_argv": lambda src, out: ladder.audio_argv(src, out / "audio", audio_filter="volume=1dB"),
    "ladder.poster_frame_argv": lambda src, out: ladder.poster_frame_argv(
        src, out / "posters" / "p1.jpg", RUNG, time_s=2.0, fps=25.0, interlaced=True
    ),  # fmt: skip
    # the sample generator's builders read lavfi sources and write the file they are given: a hostile one here
    "samples.video_argv": lambda src, out: samples.video_argv(src, width=320, height=180, fps=25, seconds=2.0),
    "samples.audio_argv": lambda src, out: samples.audio_argv(src, seconds=2.0, frequency=660),
    "samples.broadcast_ts_argv": lambda src, out: samples.broadcast_ts_argv(src, seconds=2.0, programmes=2),
    "samples.media_argv": lambda src, out: samples.media_argv(src, fmt="vp9_webm", height=360, fps=25, seconds=2.0),
    "samples.feature_argv": lambda src, out: samples.feature_argv(src, width=320, height=180, seconds=2.0),
}


def test_every_argv_builder_is_covered():
    assert _builders() == set(BUILDERS)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_argv_builders_keep_a_hostile_file_name_whole(builder, hostile, tmp_path):
    folder = tmp_path / f"in {hostile}"  # hostile in the folder (out_dir) and in the file name
    src, out = folder / f"{hostile}.mp4", folder / "out"
    argv = BUILDERS[builder](src, out)
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
    assert argv[0] in ("ffmpeg", "ffprobe")
    assert str(src) in argv, "the source is one argument, exactly as given"
    # wherever a piece of the name shows up, the whole folder does: nothing split or rewritten
    for a in argv:
        if hostile in a:
            assert a.startswith(str(folder)), a


def _hostile_clip(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "it's; $(touch PWNED) `touch PWNED` & x\ny.mp4"
    samples.make_video(clip, width=160, height=120, fps=25, seconds=1)
    return clip


def test_ffprobe_and_ffmpeg_read_a_hostile_file_name_and_no_shell_runs(tmp_path):
    clip = _hostile_clip(tmp_path)
    facts = media.probe(clip)
    assert facts["video"]["width"] == 160
    proc = subprocess.run(qc.detect_argv(clip, has_video=True, has_audio=True, metadata_dir=tmp_path),
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-500:]
    assert not list(tmp_path.rglob("PWNED")), "a shell ran the name's command substitution"


def test_embedded_caption_extraction_opens_a_hostile_file_name(tmp_path):
    """A/53 captions go through lavfi's movie= filter: the only place a file name is parsed by ffmpeg itself
    instead of passed as an argument, so it must be escaped for the filter and for the graph."""
    clip = _hostile_clip(tmp_path)
    clip = clip.rename(clip.with_name("a,b;c[d]e:f'g.mp4"))
    proc = subprocess.run(media.extract_captions_argv(clip, tmp_path / "cc.vtt", "a53"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]


def test_ffmpeg_hook_runs_the_argv_as_given(tmp_path):
    """FFmpegHook (through mediaflow.ffrun) hands the list to Popen unchanged: the file lands under its hostile name, and the
    `$(...)` and backticks in it never run. In a child process: Airflow reads its configuration at import."""
    folder = tmp_path / "work"
    folder.mkdir()
    out = folder / "it's; $(touch PWNED) `touch PWNED` & x\ny.mp4"
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=0.4",
            "-c:v", "libx264", "-preset", "ultrafast", str(out)]  # fmt: skip
    home = tmp_path / "airflow-home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")])}  # fmt: skip
    code = "import json, sys\nfrom mediaflow_airflow.hooks import FFmpegHook\nFFmpegHook().run(json.loads(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], env=env, cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert [p.name for p in folder.iterdir()] == [out.name]
    assert not list(tmp_path.rglob("PWNED"))
