"""What a run's trigger form (its conf) asks for, as plain functions: the schema patterns the form validates
with, the locale subset, and who must answer the human reviews.

The value-stream DAG's params (plugins/mediaflow_airflow/value_stream.py) use the patterns below, so a bad
value is refused when the run is triggered, before any task starts.
"""

from __future__ import annotations

from collections.abc import Iterable

# A delivery id (a folder under deliveries/ in the landing bucket) or an s3://bucket/prefix/
DELIVERY_PATTERN = r"^(s3://[^\s]+|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
# BCP-47-ish: language, optional script, optional region (en, es-ES, zh-Hant-TW, es-419)
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$"
# an Airflow user name, or empty for "the spec's reviewers"
REVIEWER_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9._@+-]{0,127})?$"


def wanted_locales(value: Iterable[str] | str | None) -> list[str] | None:
    """The locale subset a run asks for; None means every locale of the delivery.

    Blank entries are dropped (the UI's one-per-line box leaves them), so an empty box means "all".
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace(",", "\n").splitlines()
    tags = [str(v).strip() for v in value if str(v).strip()]
    return tags or None


def locale_selected(locale: str, wanted: Iterable[str] | None) -> bool:
    """RFC 4647 basic filtering, case-insensitive: `es` selects es, es-ES and es-419; `es-ES` selects es-ES only."""
    if wanted is None:
        return True
    tag = locale.lower()
    return any(tag == w.lower() or tag.startswith(w.lower() + "-") for w in wanted)


def select_locales(items: list[dict], wanted: Iterable[str] | None) -> tuple[list[dict], list[str]]:
    """Keep the locale items a run asked for. Returns (kept, skipped locales).

    A wanted locale the delivery does not have selects nothing; that is not an error.
    """
    wanted = wanted_locales(wanted)
    kept = [i for i in items if locale_selected(i["locale"], wanted)]
    skipped = sorted({i["locale"] for i in items if i not in kept})
    return kept, skipped


def review_assignees(reviewer: str | None, spec_reviewers: Iterable[str]) -> list[dict] | None:
    """HITL `assigned_users` for a review: the run's reviewer override, else the spec's reviewers, else anyone
    (None)."""
    reviewer = (reviewer or "").strip()
    names = [reviewer] if reviewer else list(spec_reviewers)
    return [{"id": n, "name": n} for n in names] or None
