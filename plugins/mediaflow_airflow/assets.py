"""The Assets that connect our DAGs: a delivery landed (-> nightly_content_batch), a run's outcome reached the
stage ledger (-> value_stream_metrics)."""

from __future__ import annotations

from airflow.sdk import Asset

# An uploader (python -m mediaflow.upload, or an S3 event bridge) records an event on this Asset per delivery.
LANDING = Asset(name="mediaflow_landing", uri="s3://mediaflow-landing/deliveries")
# Every value-stream run's `outcome` task updates it once the run's result is in the ledger.
LEDGER = Asset(name="mediaflow_ledger", uri="mediaflow-ledger://stage_runs")
# A drop of viewing events landed in s3://mediaflow-landing/viewing-events/ (-> audience_feedback).
VIEWING_EVENTS = Asset(name="mediaflow_viewing_events", uri="s3://mediaflow-landing/viewing-events")
# audience_feedback published new figures, priorities and recommendations (feedback/latest/).
FEEDBACK = Asset(name="mediaflow_feedback", uri="s3://mediaflow-reports/feedback/latest")
