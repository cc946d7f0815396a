"""TTML / DFXP -> cues, with ttconv.imsc.reader. Legacy DFXP namespaces are mapped onto the TTML namespace first;
entity declarations are refused; a time expression ttconv cannot parse and a paragraph it prunes are errors naming
the <p> and its line.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import xml.parsers.expat

from mediaflow.captions.encoding import _BOMS, decode_text
from mediaflow.captions.model import CaptionError, Cue, Finding, _error
from mediaflow.captions.ttconv_cues import _cues_from_model, _log_warnings, _model_cues, _ttconv_log

_TTML_NS = "http://www.w3.org/ns/ttml"
_LEGACY_TT_NS = re.compile(r"^http://www\.w3\.org/2006/(?:02|04|10)/ttaf1(#[a-z]+)?$")


def _modernise_ns(uri: str) -> str:
    m = _LEGACY_TT_NS.match(uri)
    if not m:
        return uri
    suffix = {"#style": "#styling", "#styling": "#styling", "#parameter": "#parameter", "#metadata": "#metadata"}
    return _TTML_NS + suffix.get(m[1] or "", m[1] or "")


def _rename_legacy_namespaces(root: ET.Element) -> bool:
    """Pre-2010 DFXP (ttaf1 namespaces) -> TTML namespaces, so ttconv's IMSC reader accepts it."""
    changed = False

    def fix(qname: str) -> str:
        nonlocal changed
        if qname.startswith("{"):
            uri, _, local = qname[1:].partition("}")
            new = _modernise_ns(uri)
            if new != uri:
                changed = True
                return "{" + new + "}" + local
        return qname

    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = fix(el.tag)
        for k in list(el.attrib):
            nk = fix(k)
            if nk != k:
                el.attrib[nk] = el.attrib.pop(k)
    if changed:  # old authoring tools also wrote a bare id="..." where TTML wants xml:id
        xml_id = "{http://www.w3.org/XML/1998/namespace}id"
        for el in root.iter():
            if "id" in el.attrib and xml_id not in el.attrib:
                el.attrib[xml_id] = el.attrib.pop("id")
    return changed


def _ttml_element_lines(data: bytes) -> list[tuple[str, dict[str, str], int]]:
    """(local name, attributes, line) of every element, in document order -- ElementTree keeps no line numbers."""
    out: list[tuple[str, dict[str, str], int]] = []
    parser = xml.parsers.expat.ParserCreate(namespace_separator="}")

    def start(name: str, attrs: dict[str, str]) -> None:
        out.append((name.rsplit("}", 1)[-1], attrs, parser.CurrentLineNumber))

    parser.StartElementHandler = start
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError:
        pass
    return out


def _xml_bytes(data: bytes, file: str) -> bytes:
    """XML must say its encoding unless it is UTF-8/16; vendors still send Windows-1252 TTML without saying so.
    Such a file is decoded like any text sidecar and handed to the XML parser as UTF-8."""
    if any(data.startswith(bom) for bom, _enc in _BOMS):
        return data
    prolog = re.match(rb"\s*<\?xml[^>]*\?>", data)
    if prolog and re.search(rb"encoding\s*=", prolog.group(0)):
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return decode_text(data, file).encode("utf-8")


_BAD_TIME = re.compile(r"Bad (begin|end|dur) attribute value: (.*)$")


class _StopScan(Exception):
    pass


def _refuse_entity_declarations(data: bytes, file: str) -> None:
    """TTML needs no DTD entities: refusing their declarations rules out entity expansion ("billion laughs")
    before any parser expands one. The scan ends at the root element, as declarations can only come before it."""
    parser = xml.parsers.expat.ParserCreate()
    found: list[tuple[str, int]] = []

    def declared(name: str, *_args) -> None:
        found.append((name, parser.CurrentLineNumber))
        raise _StopScan

    def root(*_args) -> None:
        raise _StopScan

    parser.EntityDeclHandler = declared
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except (_StopScan, xml.parsers.expat.ExpatError):
        pass  # malformed XML is reported by the real parse
    except LookupError as e:  # the XML declaration names an encoding Python does not know (encoding="UTF-3")
        raise CaptionError(
            [_error("parse", file, f"the XML declaration names an unknown encoding: {e}", line=1)]
        ) from None
    if found:
        name, line = found[0]
        detail = f"declares the XML entity '{name}': entity declarations are not allowed in TTML (entity expansion)"
        raise CaptionError([_error("parse", file, detail, line=line)])


def _xml_root(data: bytes, file: str) -> ET.Element:
    """The parsed document; an unknown declared encoding or malformed XML is a CaptionError naming the file."""
    try:
        root = ET.fromstring(data)
    except LookupError as e:
        raise CaptionError(
            [_error("parse", file, f"the XML declaration names an unknown encoding: {e}", line=1)]
        ) from None
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise CaptionError([_error("parse", file, f"not well-formed XML: {e}", line=line)]) from None
    return root


def _parse_ttml(data: bytes, file: str) -> tuple[list[Cue], list[Finding]]:
    from ttconv.imsc import reader as imsc_reader

    data = _xml_bytes(data, file)
    _refuse_entity_declarations(data, file)
    root = _xml_root(data, file)
    if not (isinstance(root.tag, str) and root.tag.rsplit("}", 1)[-1] == "tt"):
        raise CaptionError([_error("parse", file, f"root element is <{root.tag}>, not a TTML <tt>", line=1)])
    _rename_legacy_namespaces(root)
    if root.tag != f"{{{_TTML_NS}}}tt":
        raise CaptionError([_error("parse", file, f"<tt> is not in the TTML namespace ({root.tag})", line=1)])

    elements = _ttml_element_lines(data)
    p_lines: list[int | None] = [ln for (local, _a, ln) in elements if local == "p"]
    with _ttconv_log() as records:
        try:
            doc = imsc_reader.to_model(ET.ElementTree(root))
        except Exception as e:  # ttconv raises ValueError/AssertionError/... on unsupported constructs
            # a KeyError is an enumerated style value it does not know (tts:textAlign="bogus"): point at it
            bad = [(local, name.rsplit("}", 1)[-1], ln) for local, attrs, ln in elements for name, value in attrs.items()
                   if isinstance(e, KeyError) and e.args and value == e.args[0]]  # fmt: skip
            if bad:
                local, name, ln = bad[0]
                detail = f'{name}="{e.args[0]}" on <{local}> is not a value TTML allows'
                raise CaptionError([_error("parse", file, detail, line=ln)]) from e
            raise CaptionError(
                [_error("parse", file, f"ttconv could not read the TTML: {type(e).__name__}: {e}")]
            ) from e
    if doc is None:
        detail = "ttconv could not read the TTML document: " + "; ".join(r.getMessage() for r in records)
        raise CaptionError([_error("parse", file, detail)])

    # ttconv logs an unparseable time expression and ignores it; that silently re-times a cue, so it is an error here.
    errors: list[Finding] = []
    for r in records:
        m = _BAD_TIME.search(r.getMessage())
        if not m:
            continue
        attr, value = m[1], m[2]
        p_no = 0
        found = False
        for local, attrs, ln in elements:
            if local == "p":
                p_no += 1
            if attrs.get(attr) == value:
                cue = p_no if local == "p" else None
                errors.append(_error("timing", file, f'unparseable {attr}="{value}" on <{local}>', cue, ln))
                found = True
        if not found:
            errors.append(_error("timing", file, f'unparseable {attr}="{value}"'))
    if errors:
        raise CaptionError(errors)

    mcues = _model_cues(doc)
    if len(mcues) < len(p_lines):
        # ttconv prunes elements it computes as never active; with offsets on <div>/<body> and implicit durations
        # its arithmetic can prune (or clip) real paragraphs. Losing captions silently is not an option.
        raise CaptionError(
            [
                _error(
                    "timing",
                    file,
                    f"{len(p_lines) - len(mcues)} of {len(p_lines)} <p> paragraphs are never "
                    "active on the timeline (check begin/end/dur on <body>/<div>: an offset without an "
                    "explicit end or dur is not supported)",
                    line=p_lines[0],
                )
            ]
        )
    if len(p_lines) != len(mcues):
        p_lines = None  # type: ignore[assignment]
    cues, _ = _cues_from_model(mcues, file, p_lines, lambda mc: "")
    return cues, _log_warnings(records, file, skip=re.compile(r"xml:lang not specified"))
