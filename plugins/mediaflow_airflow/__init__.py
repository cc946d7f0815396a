"""Airflow side of mediaflow: hooks, operators and the value-stream DAG factory over the mediaflow library."""
