"""Value stream metrics: flow metrics over the stage ledger, validated with Great Expectations, an HTML report with
charts and the value stream map (reports bucket, value-streams/latest/), and a daily digest to stream owners.

Schedule: MEDIAFLOW_METRICS_CRON (default hourly, UTC), and every update of the `mediaflow_ledger` Asset (a
value-stream run ended). See plugins/mediaflow_airflow/value_stream_metrics.py and docs/analytics.md.
"""

from mediaflow_airflow.value_stream_metrics import value_stream_metrics_dag

value_stream_metrics = value_stream_metrics_dag()
