"""The Assets that connect our DAGs: a delivery landed (-> nightly_content_batch), a run's outcome reached the
stage ledger (-> value_stream_metrics).

Every URI here is a constant already in Airflow's normal form, so each Asset is declared without Airflow's
per-scheme URI normaliser (`declared`): the first Asset with a provider's scheme makes Airflow import every
provider's asset-URI module, and the amazon provider's `s3` one imports its S3Hook and so boto3, about 0.3 s of CPU
in every parse of a DAG file that holds an Asset (docs/performance.md, "DAG parse"). What the normaliser checks of
an s3:// URI (a bucket is named) these constants pass; tests/dags/test_dag_integrity.py holds each of them equal to the
Asset Airflow's own constructor makes.
"""

from __future__ import annotations

from airflow.sdk import Asset


def declared(*, name: str, uri: str) -> Asset:
    """An Asset for a URI already in normal form (lower-case scheme, a bucket, a path without a trailing slash, or
    just "/"), built without importing the scheme's normaliser: Airflow never normalises `x-` schemes, so the Asset
    is made under one and given its real URI afterwards (attrs' converter runs only in __init__)."""
    scheme, sep, rest = uri.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or scheme != scheme.lower() or not netloc or not slash or (path.endswith("/") or "//" in path):
        raise ValueError(
            f"asset {name!r}: {uri!r} is not a normalised URI (scheme://bucket/path without a trailing "
            "/, or scheme://bucket/)"
        )
    asset = Asset(name=name, uri=f"x-{uri}")
    object.__setattr__(asset, "uri", uri)
    return asset


# An uploader (python -m mediaflow_dev.upload, or an S3 event bridge) records an event on this Asset per delivery.
LANDING = declared(name="mediaflow_landing", uri="s3://mediaflow-landing/deliveries")
# Every value-stream run's `outcome` task updates it once the run's result is in the ledger.
LEDGER = declared(name="mediaflow_ledger", uri="mediaflow-ledger://stage_runs/")
# A drop of viewing events landed in s3://mediaflow-landing/viewing-events/ (-> audience_feedback).
VIEWING_EVENTS = declared(name="mediaflow_viewing_events", uri="s3://mediaflow-landing/viewing-events")
# audience_feedback published new figures, priorities and recommendations (feedback/latest/).
FEEDBACK = declared(name="mediaflow_feedback", uri="s3://mediaflow-reports/feedback/latest")
ALL = (LANDING, LEDGER, VIEWING_EVENTS, FEEDBACK)
