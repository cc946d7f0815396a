"""The `mediaflow` Airflow plugin: the stage ledger listener (mediaflow_airflow/listener.py) and the "Value Streams"
dashboard (mediaflow_airflow/dashboard.py), mounted on the API server at /mediaflow and shown in the UI's nav and
as a tab of every run."""

from __future__ import annotations

import importlib

from airflow.plugins_manager import AirflowPlugin

from mediaflow_airflow import listener


class _ImportedOnFirstRequest:
    """An ASGI app that imports the real one on its first request. Every Airflow process imports this plugin (for
    the listener); only the API server serves the dashboard, whose imports (FastAPI, Airflow's API security,
    Jinja2) would add about a second to each task process."""

    def __init__(self, target: str) -> None:
        self.target, self._app = target, None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            module, _, name = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), name)
        await self._app(scope, receive, send)


class MediaflowPlugin(AirflowPlugin):
    name = "mediaflow"
    listeners = [listener]
    fastapi_apps = [{"app": _ImportedOnFirstRequest("mediaflow_airflow.dashboard:app"), "url_prefix": "/mediaflow",
                     "name": "Value Streams"}]  # fmt: skip
    external_views = [
        {
            "name": "Value Streams",
            "href": "/mediaflow/",
            "destination": "nav",
            "url_route": "value-streams",
            "nav_top_level": True,
        },  # fmt: skip
        {
            "name": "Value stream",
            "href": "/mediaflow/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "value-stream-run",
        },  # fmt: skip
    ]
