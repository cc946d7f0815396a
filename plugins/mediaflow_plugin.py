"""The `mediaflow` Airflow plugin: registers the stage ledger listener (see mediaflow_airflow/listener.py)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mediaflow_airflow import listener


class MediaflowPlugin(AirflowPlugin):
    name = "mediaflow"
    listeners = [listener]
