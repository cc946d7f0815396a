"""Airflow settings for DAG integrity tests, set before anything imports airflow.

Airflow reads its configuration once, at import, so this runs at conftest import time (before the test module
imports airflow): a throwaway AIRFLOW_HOME with a SQLite file, no example DAGs, and this project's dags/.
Parsing DAGs needs no database; the SQLite URL only keeps Airflow away from any other installation's DB.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT / "dags"
STREAMS_FOLDER = PROJECT / "include" / "streams"

_home = tempfile.mkdtemp(prefix="mediaflow-airflow-home-")
atexit.register(shutil.rmtree, _home, True)
os.environ.update(
    {
        "AIRFLOW_HOME": _home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home}/airflow.db",
    }
)
for _p in (PROJECT / "include", PROJECT / "plugins", PROJECT / "tools"):  # as the Makefile's PYTHONPATH does
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session")
def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.x
    except ImportError:  # pragma: no cover - older layout
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    # Guard: the settings above really took effect (airflow was not imported earlier with other settings).
    from airflow.configuration import conf

    assert conf.get("core", "dags_folder") == str(DAGS_FOLDER)
    assert os.path.realpath(os.environ["AIRFLOW_HOME"]) == os.path.realpath(_home)
    return bag
