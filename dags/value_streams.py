"""Value streams: one DAG per stream spec in include/streams/*.yaml.

A new value stream is a new spec file, no code. Each DAG is `value_stream__<name>`: ingest -> transcode ->
publish, triggered from the UI form (delivery id or s3:// prefix, priority) or by the batch.
"""

from mediaflow.spec import load_specs
from mediaflow_airflow.value_stream import value_stream_dag

for _spec in load_specs().values():
    globals()[_spec.dag_id] = value_stream_dag(_spec)
