"""Text encodings of caption sidecars: BOM sniffing, strict UTF-8, else charset-normalizer's best guess, with ties
between legacy code pages broken by the language in the file name.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from mediaflow.captions.model import CaptionError, _error

# Legacy Windows code page by language, used only to break ties between equally plausible charset-normalizer
# guesses (for short Western text it scores cp1250 and cp1252 identically and picks cp1250: "niño" -> "nińo").
_LEGACY_CODEPAGE = {
    **dict.fromkeys(
        "af ca cy da de en es et eu fi fo fr ga gd gl id is it ms nb nl nn no oc pt sq sv sw".split(), "cp1252"
    ),
    **dict.fromkeys("bs cs hr hu pl ro sk sl".split(), "cp1250"),
    **dict.fromkeys("be bg mk ru sr uk".split(), "cp1251"),
    "el": "cp1253",
    "tr": "cp1254",
    "az": "cp1254",
    "he": "cp1255",
    "yi": "cp1255",
    "ar": "cp1256",
    "fa": "cp1256",
    "ur": "cp1256",
    "lt": "cp1257",
    "lv": "cp1257",
    "vi": "cp1258",
}


def language_hint(filename: str) -> str | None:
    """BCP-47 language found in a sidecar name ("show.es-MX.srt", "fr.vtt", "ep1_pt_BR.scc"), else None."""
    import langcodes

    stem = Path(filename).name
    stem = stem[: -len(Path(stem).suffix)] if Path(stem).suffix else stem
    tokens = re.split(r"[.\s]+", stem)
    candidates: list[str] = []
    for tok in reversed(tokens):
        candidates.append(tok.replace("_", "-"))
        parts = re.split(r"[_-]", tok)
        candidates.extend(reversed(parts))
        candidates.extend("-".join(parts[i : i + 2]) for i in range(len(parts) - 1))
    for cand in candidates:
        if 2 <= len(cand) and langcodes.tag_is_valid(cand):
            lang = langcodes.Language.get(cand).language
            if lang in _LEGACY_CODEPAGE:
                return lang
    return None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_text(data: bytes, filename: str) -> str:
    """Bytes of a text sidecar -> str. BOM (UTF-8/16/32) first, then strict UTF-8, then charset-normalizer's best
    guess; ties between equally plausible legacy code pages go to the file's language (from its name), else cp1252."""
    name = Path(filename).name
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(enc)
            except UnicodeDecodeError as e:
                detail = f"not valid {enc} despite its byte-order mark ({e.reason} at byte {e.start + len(bom)})"
                raise CaptionError([_error("parse", name, detail)]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass

    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        raise CaptionError([_error("parse", name, "cannot determine the text encoding (binary data?)")])
    best = matches[0]
    ties = [m for m in matches if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01]
    tied = {codecs.lookup(m.encoding).name: m for m in ties}
    hint = language_hint(name)
    for preferred in (_LEGACY_CODEPAGE.get(hint or ""), "cp1252"):
        if preferred and codecs.lookup(preferred).name in tied:
            return str(tied[codecs.lookup(preferred).name])
    return str(best)
