"""The `mediaflow` Airflow plugin: the stage ledger listener (mediaflow_airflow/listener.py) and the "Value Streams"
dashboard (mediaflow_airflow/dashboard.py), mounted on the API server at /mediaflow (under Airflow's base URL) and
shown in the UI's nav and as a tab of every run."""

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
    # the UI's entries (nav and a tab of every run): plain HTML pages of the app above, framed by a small host
    # component (mediaflow_airflow/static/value_streams.js; docs/architecture.md says why not an external view).
    # The bundle's URL is relative: the UI resolves it against its base URL, so a base URL with a path works.
    react_apps = [
        {
            "name": "Value Streams",
            "bundle_url": "mediaflow/static/value_streams.js",
            "destination": "nav",
            "url_route": "value-streams",
            "nav_top_level": True,
        },  # fmt: skip
        {
            "name": "Value stream",
            "bundle_url": "mediaflow/static/value_streams.js",
            "destination": "dag_run",
            "url_route": "value-stream-run",
        },  # fmt: skip
    ]
