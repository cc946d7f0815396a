"""ffmpeg filter graphs built with ffmpeg-python, compiled to an argv (no shell); running them is mediaflow.ffrun's job.

ffmpeg-python (`import ffmpeg`) names the graph's links itself ([s0], [s1], ...), quotes every filter option for
both levels of ffmpeg's filtergraph parsing (so an expression's commas or a path's colons need no hand escaping),
and writes each output's options in name order: what ffmpeg reads is the same graph and the same options, so the
same bytes (tests/unit/test_ffmpeg_graphs.py holds the hand-built argv these replaced and compares both).

The global options every mediaflow ffmpeg gets (no stdin, no banner, overwrite) go first, right after the program
name, where progress.with_progress adds its own; ffmpeg-python would put them after the outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import ffmpeg

FFMPEG = "ffmpeg"
GLOBAL = ("-nostdin", "-hide_banner", "-y")
QUIET = ("-nostdin", "-hide_banner", "-nostats", "-loglevel", "error")  # analysis passes: errors only, no stats


def command(*outputs, global_args: Iterable[str] = GLOBAL) -> list[str]:
    """The argv of one ffmpeg writing every output (ffmpeg-python OutputStreams) in one run."""
    graph = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return [FFMPEG, *global_args, *graph.get_args()]


def source(path: str | Path, **options) -> ffmpeg.nodes.FilterableStream:
    """An input file; `options` are its input options (ss="1.5" -> -ss 1.5 before -i)."""
    return ffmpeg.input(str(path), **options)


def null_output(*streams):
    """Every stream decoded (and filtered) to nothing: an analysis pass whose results come from its filters."""
    return ffmpeg.output(*streams, "-", format="null")


_KEY = re.compile(r"^[A-Za-z_][\w-]*=")
# ffmpeg-python 0.2.0 escapes a positional filter option twice ('=' and ':' arrive as '\\=' where ffmpeg undoes
# one level): a positional value holding one is given by the option's name, as ffmpeg would assign it (the filter's
# options in declaration order).
SHORTHAND = {"pan": ("args",)}


def parse_chain(text: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """A filter chain as mediaflow writes them ('aformat=sample_fmts=fltp,volume=-3.00dB,aresample=48000') ->
    [(name, positional, named)]. Only plain chains: a quote or a backslash (escaping, which ffmpeg-python does
    itself) is a ValueError, so nothing is read differently from the way ffmpeg would read it."""
    if not text or "'" in text or "\\" in text or any(c in text for c in "[];"):
        raise ValueError(f"not a plain filter chain: {text!r}")
    out = []
    for part in text.split(","):
        name, _, opts = part.partition("=")
        positional, named = [], {}
        for opt in opts.split(":") if opts else []:
            if _KEY.match(opt):
                key, _, value = opt.partition("=")
                named[key] = value
            else:
                positional.append(opt)
        if any(re.search(r"[=:]", p) for p in positional):
            names = SHORTHAND.get(name, ())
            if len(names) < len(positional):
                raise ValueError(f"{part!r}: a positional option with '=' (add the filter to SHORTHAND)")
            named = {**dict(zip(names, positional, strict=False)), **named}
            positional = []
        out.append((name, positional, named))
    return out


def apply_chain(stream, text: str):
    """`stream` through a plain filter chain (parse_chain)."""
    for name, positional, named in parse_chain(text):
        stream = stream.filter(name, *positional, **named)
    return stream
