"""The default poster: which of a title's poster candidates players show first, set from the poster A/B test.

Transcode writes the default `poster.jpg` and candidates `posters/p1.jpg`..`p3.jpg` (scene-detected frames);
publish copies them all into the title's version folder `<channel>/<asset_id>/<version>/` (immutable), and the
default one to the title's stable `<channel>/<asset_id>/poster.jpg` (a switch point, like the master playlist,
cached briefly). When the audience feedback loop declares a winner (feedback.ab_decisions), `set_default_poster`
copies that candidate of the live version over the stable `poster.jpg` on every channel the title is live on and
records the choice in the title's published state, so a later sidecar-only publish keeps it.
Callers hold the asset's publish lease (`publish:<asset_id>`) around it: it is a publish of the title.
A new source (a re-delivery that is transcoded again) brings new candidates and the default poster again.
"""

from __future__ import annotations

import json
import re

from mediaflow import ladder
from mediaflow.store import (
    SWITCH,
    Buckets,
    Store,
    distribution_prefix,
    published_state,
    published_state_key,
    version_prefix,
)

VARIANT = re.compile(r"^p[1-9][0-9]?$")
POSTER, POSTERS_DIR = ladder.POSTER, ladder.POSTERS_DIR


def candidate_file(variant: str) -> str:
    return f"{POSTERS_DIR}/{variant}.jpg"


def candidates(state: dict) -> list[str]:
    """The poster variants the live version of a title has (p1, p2, ...), from its published state."""
    files = (state.get("video") or {}).get("files") or []
    found = [f[len(POSTERS_DIR) + 1 : -4] for f in files if f.startswith(POSTERS_DIR + "/") and f.endswith(".jpg")]
    return sorted((v for v in found if VARIANT.match(v)), key=lambda v: int(v[1:]))


def source_of_default(state: dict | None) -> str:
    """The file (relative to the title's folder) that `poster.jpg` is copied from when the title is published
    again without a new transcode: the chosen candidate when the A/B test set one, else the default poster."""
    chosen = ((state or {}).get("poster") or {}).get("variant")
    if chosen and chosen in candidates(state or {}):
        return candidate_file(chosen)
    return POSTER


def set_default_poster(store: Store, buckets: Buckets, *, asset_id: str, variant: str, decision: dict | None = None,
                       decided_by: str | None = None, now: str) -> dict:  # fmt: skip
    """Make candidate `variant` the title's default poster on every channel it is live on. Idempotent: when
    `poster.jpg` already is that candidate everywhere, nothing is written and status is `unchanged`.

    Returns {"asset_id", "variant", "status": changed | unchanged | skipped, "previous", "channels", "reason"}.
    `skipped` (with the reason) when the title is not live, or the variant is not one of its candidates (the
    test ran on posters of an earlier version, or the events name a variant we never made)."""
    out = {
        "asset_id": asset_id,
        "variant": variant,
        "status": "skipped",
        "previous": None,
        "channels": [],
        "reason": None,
    }
    state = published_state(store, buckets, asset_id)
    if state is None:
        return {**out, "reason": f"asset {asset_id} is not published: no default poster to set"}
    have = candidates(state)
    if variant not in have:
        return {**out, "reason": (f"asset {asset_id}: poster variant {variant!r} is not a candidate of the live version "
                                  f"(delivery {state.get('delivery_id')}: {', '.join(have) or 'no candidates'})")}  # fmt: skip
    previous = (state.get("poster") or {}).get("variant")
    out["previous"] = previous
    changed = []
    for channel in state.get("channels") or []:
        prefix = distribution_prefix(channel, asset_id)
        src_key = version_prefix(channel, asset_id, state.get("version")) + candidate_file(variant)
        src = store.list(buckets.distribution, src_key).get(src_key)
        dst = store.list(buckets.distribution, prefix + POSTER).get(prefix + POSTER)
        if src is None:
            raise RuntimeError(f"asset {asset_id}: s3://{buckets.distribution}/{src_key} is "
                               "missing although the published state lists it")  # fmt: skip
        if dst is not None and dst["etag"] == src["etag"]:
            continue  # already this candidate: a re-run changes nothing
        store.copy(buckets.distribution, src_key, buckets.distribution, prefix + POSTER, cache_control=SWITCH)
        changed.append(channel)
    if previous == variant and not changed:
        return {**out, "status": "unchanged", "channels": state.get("channels") or []}
    state["poster"] = {
        "variant": variant,
        "set_at": now,
        "decided_by": decided_by,
        "p_value": (decision or {}).get("p_value"),
        "ctr": {v: d.get("ctr") for v, d in ((decision or {}).get("variants") or {}).items()},
    }
    store.put_bytes(json.dumps(state, indent=2).encode(), buckets.reports, published_state_key(asset_id))
    return {**out, "status": "changed", "channels": changed or state.get("channels") or []}


def to_record(result: dict, recorded: str | None) -> bool:
    """Whether the ledger must get this set_default_poster result (`recorded`: the variant its latest change for
    the title names): every change, and a default the ledger does not name yet (an earlier try died between
    writing the published state and recording it)."""
    return result["status"] == "changed" or (result["status"] == "unchanged" and recorded != result["variant"])


def winners(ab: dict) -> list[dict]:
    """The A/B decisions (feedback/latest/ab.json) that declared a winner, one entry per title, in title order."""
    titles = (ab or {}).get("titles") or {}
    return [{"asset_id": t, "variant": d["winner"], "decision": {k: d.get(k) for k in ("p_value", "threshold", "variants")}}
            for t, d in sorted(titles.items()) if d.get("winner")]  # fmt: skip
