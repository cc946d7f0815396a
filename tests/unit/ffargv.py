"""Reading an ffmpeg argv the way ffmpeg does, so that tests compare what ffmpeg will do, not how the argv is
spelled: escapes and quotes undone, filter labels followed to the filters behind them, options in any order."""

from __future__ import annotations

import re

FLAGS = {"-nostdin", "-hide_banner", "-y", "-an", "-vn", "-nostats"}  # options without a value
GLOBAL = {"-nostdin", "-hide_banner", "-y", "-nostats", "-loglevel", "-filter_complex", "-progress", "-stats_period"}


def token(text: str, i: int, stop: str) -> tuple[str, int]:
    """libavutil's av_get_token: up to an unquoted, unescaped char of `stop`; quotes and backslashes undone."""
    out, quoted = [], False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "'":
                quoted = False
            else:
                out.append(c)
        elif c == "\\" and i + 1 < len(text):
            i += 1
            out.append(text[i])
        elif c == "'":
            quoted = True
        elif c in stop:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip(), i


# a filter's first options in declaration order: libavfilter gives a positional value the next one's name
SHORTHAND = {
    "pan": ("args",),
    "volume": ("volume",),
    "aresample": ("sample_rate",),
    "fps": ("fps",),
    "scale": ("w", "h"),
    "select": ("expr",),
    "format": ("pix_fmts",),
    "setsar": ("r",),
    "split": ("outputs",),
}


def filter_args(opts: str, name: str = "") -> tuple:
    """A filter's options as libavfilter reads them: ':'-separated, each `key=value` or a positional value (named
    by SHORTHAND where known)."""
    positional, named = [], []
    i = 0
    while i <= len(opts) and opts:
        m = re.match(r"[-\w/.]+=", opts[i:])
        if m:
            key = m.group(0)[:-1]
            value, i = token(opts, i + len(m.group(0)), ":")
            named.append((key, value))
        else:
            value, i = token(opts, i, ":")
            positional.append(value)
        if i >= len(opts):
            break
        i += 1  # the ':'
    names = SHORTHAND.get(name, ())
    named += list(zip(names, positional, strict=False))
    positional = positional[len(names) :]
    return tuple(positional), tuple(sorted(named))


def parse_graph(graph: str, prefix: str = "#link") -> dict:
    """label -> (filter, its input labels) of a -filter_complex; a filter is (name, positional, named).
    Unlabelled links inside a chain get labels of their own."""
    produced: dict[str, tuple] = {}
    i, n = 0, 0
    while i < len(graph):
        inputs = []
        while i < len(graph) and graph[i] == "[":
            j = graph.index("]", i)
            inputs.append(graph[i + 1 : j])
            i = j + 1
        while True:
            name, i = token(graph, i, "=,;[")
            opts = ""
            if i < len(graph) and graph[i] == "=":
                start = i + 1
                # the options token: unescape at graph level (what av_get_token(buf, "[],;") returns)
                opts, i = token(graph, start, "[],;")
            outputs = []
            while i < len(graph) and graph[i] == "[":
                j = graph.index("]", i)
                outputs.append(graph[i + 1 : j])
                i = j + 1
            flt = (name, *filter_args(opts, name))
            if not outputs:
                n += 1
                outputs = [f"{prefix}{n}"]
            for k, label in enumerate(outputs):
                produced[label] = (flt, tuple(inputs), k if name not in ("split", "asplit") else 0)
            sep = graph[i] if i < len(graph) else ";"
            i += 1
            if sep == ",":
                inputs = [outputs[0]]
                continue
            break
    return produced


def resolve(label: str, produced: dict):
    """What feeds a label: the nested filters back to the input stream."""
    if label not in produced:
        return ("input", label)
    flt, inputs, pad = produced[label]
    return (flt, pad, tuple(resolve(x, produced) for x in inputs))


def canonical(argv: list[str]) -> dict:
    """An argv as ffmpeg reads it: program, global options, inputs with their options, and per output file its
    options (order ignored) and what feeds each -map (filter labels followed to the filters)."""
    assert argv[0] in ("ffmpeg", "ffprobe")
    glob, inputs, outputs, pending = [], [], {}, []
    i, graph = 1, ""
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL:
            value = None if a in FLAGS else argv[i + 1]
            if a == "-filter_complex":
                graph = value
            else:
                glob.append((a, value))
            i += 1 if a in FLAGS else 2
        elif a == "-i":
            inputs.append((argv[i + 1], tuple(sorted(pending))))
            pending = []
            i += 2
        elif a.startswith("-") and a != "-":
            pending.append((a, None if a in FLAGS else argv[i + 1]))
            i += 1 if a in FLAGS else 2
        else:
            assert a not in outputs, f"{a}: two outputs"
            outputs[a] = pending
            pending = []
            i += 1
    assert not pending, f"trailing options {pending}"
    produced = parse_graph(graph) if graph else {}
    files = {}
    for path, opts in outputs.items():
        maps = [v[1:-1] if v.startswith("[") else v for k, v in opts if k == "-map"]
        # a simple filtergraph (-vf/-af) is the same as a complex one on the stream it filters: the video map
        # (':v' in it, else the first map), the audio map (':a' in it, else the last)
        for flag, kind, fallback in (
            ("-vf", ":v", 0),
            ("-filter:v", ":v", 0),
            ("-af", ":a", -1),
            ("-filter:a", ":a", -1),
        ):
            chain = [v for k, v in opts if k == flag]
            if chain:
                at = next((n for n, m in enumerate(maps) if kind in m), fallback % len(maps))
                simple = parse_graph(f"[{maps[at]}]{chain[0]}[{flag}:{path}]", prefix=f"#{flag}:{path}:")
                produced = {**produced, **simple}
                maps[at] = f"{flag}:{path}"
        maps = tuple(resolve(m, produced) for m in maps)
        skip = {"-map", "-vf", "-af", "-filter:v", "-filter:a"}
        files[path] = {"maps": maps, "options": tuple(sorted((k, v) for k, v in opts if k not in skip))}
    return {"program": argv[0], "global": tuple(sorted(glob)), "inputs": inputs, "outputs": files}


def _flat(node) -> list[str]:
    """One output's filters from the input on, each as 'name=opt:opt:key=value' (named options sorted)."""
    if node[0] == "input":
        return [f"input={node[1]}"]
    (name, positional, named), _pad, inputs = node
    before = [x for i in inputs for x in _flat(i)]
    opts = ":".join([*positional, *(f"{k}={v}" for k, v in named)])
    return before + [f"{name}={opts}" if opts else name]


def outputs(argv: list[str]) -> dict[str, dict]:
    """{output path: {"filters": [per map: [filters from the input on]], "options": {option: value (the last)}}}."""
    read = canonical(argv)
    return {
        path: {"filters": [_flat(m) for m in out["maps"]], "options": dict(out["options"])}
        for path, out in read["outputs"].items()
    }
