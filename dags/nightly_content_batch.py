"""Nightly content batch (and on landing): new deliveries validated as one batch, one value-stream run each.

Schedule: MEDIAFLOW_NIGHTLY_CRON (default 0 2 * * *) in MEDIAFLOW_NIGHTLY_TZ (default UTC), or an event on the
`mediaflow_landing` Asset. See plugins/mediaflow_airflow/content_batch.py.
"""

from mediaflow_airflow.content_batch import content_batch_dag

nightly_content_batch = content_batch_dag()
