"""The embedded stack: PostgreSQL, Airflow standalone, a local S3 API (moto server, object bytes on disk:
mediaflow_dev.s3local) and an SMTP sink, as plain processes.

Usage: python -m mediaflow_dev.devstack up|down|status|env|clean

State lives in MEDIAFLOW_STACK_DIR (default <project>/.stack): Airflow's home, PostgreSQL's data (Airflow's metadata
DB and the stage ledger, two databases of one server: mediaflow_dev.pgserver), the S3 API's object files (s3/, emptied
whenever the S3 API starts or stops: its index is in memory), pid files, logs.
`down` stops exactly the processes `up` started (their pid files), each with its whole process group; the databases
are kept. `clean` stops the stack and deletes its state, PostgreSQL's data included.
Ports come from MEDIAFLOW_AIRFLOW_PORT (8080), MEDIAFLOW_S3_PORT (9000), MEDIAFLOW_SMTP_PORT (1025),
MEDIAFLOW_PG_PORT (5433: beside a system PostgreSQL on 5432, never on it).
MEDIAFLOW_S3_CLIENT_PORT, when set, is where Airflow and its tasks reach the S3 API instead of MEDIAFLOW_S3_PORT:
a proxy sits there (the tests put a fault gate there to take storage down and bring it back).
MEDIAFLOW_API_CLIENT_PORT, likewise, is where the content batch's API connection reaches Airflow's REST API (the
tests put an HTTP fault gate there to make one delivery's trigger fail).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mediaflow.capacity import capacity
from mediaflow.store import Buckets
from mediaflow_dev.install import elapsed
from mediaflow_dev.pgserver import PostgresError, PostgresServer

PROJECT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# The local S3 emulator accepts any key pair. The secret is still random per stack (Stack.s3_secret), so a test can
# grep logs, XCom and outputs for it: a secret that equals a name would be found everywhere and prove nothing.
LOCAL_S3_KEY = "mediaflow-local"
SERVICES = ("postgres", "s3", "smtp", "airflow")  # started in this order, stopped in reverse
SERVICE_USER = "mediaflow_batch"
VIEWER = "viewer"
# SimpleAuthManager users and roles. admin: people; mediaflow_batch: the service account the batch and the uploader
# call the REST API with; viewer: read-only (it sees every DAG, may trigger or answer nothing)
USERS = {"admin": "admin", SERVICE_USER: "op", VIEWER: "viewer"}


# Airflow standalone's components, in the order a boot line names them; the API server answers last
AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
BOOT_PROGRESS_EVERY = 10.0  # seconds between the lines a long start-up wait prints


class StackError(RuntimeError):
    pass


def boot_line(seconds: float, components: list[str]) -> str:
    """What the wait for Airflow's API prints while it boots: the seconds so far and which components run."""
    up = f"{', '.join(components)} running" if components else "no component running yet"
    return f"[stack] airflow: booting, {elapsed(seconds)} so far ({up}; waiting for its API to answer)"


def base_path(value: str) -> str:
    """MEDIAFLOW_BASE_PATH as a path: "" for the host's root, else "/<path>" without a trailing slash."""
    value = value.strip().strip("/")
    return f"/{value}" if value else ""


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    out_dir: Path
    airflow_port: int
    s3_port: int
    smtp_port: int
    s3_client_port: int | None = None  # a proxy in front of the S3 API for Airflow's side, if any
    pg_port: int = 5433
    api_client_port: int | None = None  # a proxy in front of the REST API for the batch's connection, if any
    base_path: str = ""  # Airflow under a path of its host ("/airflow": AIRFLOW__API__BASE_URL with a path), if any

    @classmethod
    def from_env(cls) -> Stack:
        env = os.environ
        return cls(
            state_dir=Path(env.get("MEDIAFLOW_STACK_DIR", PROJECT / ".stack")).resolve(),
            out_dir=Path(env.get("MEDIAFLOW_OUT_DIR", PROJECT / "out")).resolve(),
            airflow_port=int(env.get("MEDIAFLOW_AIRFLOW_PORT", 8080)),
            s3_port=int(env.get("MEDIAFLOW_S3_PORT", 9000)),
            smtp_port=int(env.get("MEDIAFLOW_SMTP_PORT", 1025)),
            s3_client_port=int(env["MEDIAFLOW_S3_CLIENT_PORT"]) if env.get("MEDIAFLOW_S3_CLIENT_PORT") else None,
            pg_port=int(env.get("MEDIAFLOW_PG_PORT", 5433)),
            api_client_port=int(env["MEDIAFLOW_API_CLIENT_PORT"]) if env.get("MEDIAFLOW_API_CLIENT_PORT") else None,
            base_path=base_path(env.get("MEDIAFLOW_BASE_PATH", "")),
        )

    # ------------------------------------------------------------ paths and environment
    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def s3_data_dir(self) -> Path:
        """Where the local S3 API keeps its objects' bytes (mediaflow_dev.s3local)."""
        return self.state_dir / "s3"

    def s3_argv(self) -> list[str]:
        return [sys.executable, "-m", "mediaflow_dev.s3local", "-H", HOST, "-p", str(self.s3_port),
                "--data-dir", str(self.s3_data_dir)]  # fmt: skip

    @property
    def s3_client_url(self) -> str:
        """Where Airflow's tasks reach the S3 API (through the proxy when there is one)."""
        return f"http://{HOST}:{self.s3_client_port or self.s3_port}"

    @property
    def api_url(self) -> str:
        """Airflow's UI and API: the host's root, or the path under it when the stack has a base path."""
        return f"http://{HOST}:{self.airflow_port}{self.base_path}"

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(state_dir=self.state_dir, port=self.pg_port)

    def pg_url(self, db: str, driver: str = "postgresql+psycopg2") -> str:
        return self.postgres.url(db, driver)

    @property
    def ledger_url(self) -> str:
        """The stage ledger: a database of its own on the stack's PostgreSQL, never Airflow's metadata DB."""
        return self.pg_url("ledger")

    def pid_file(self, service: str) -> Path:
        return self.state_dir / "pids" / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.state_dir / "logs" / f"{service}.log"

    # long: one environment for every Airflow process, variable by variable, each commented
    def env(self) -> dict[str, str]:
        """Environment for Airflow, its tasks, the runner and the tests: set once, used everywhere."""
        venv_bin = str(Path(sys.executable).parent)
        aws = {
            "conn_type": "aws",
            "login": LOCAL_S3_KEY,
            "password": self.s3_secret,
            # botocore retries once; mediaflow's own retry (exponential backoff, jitter, a time budget:
            # MEDIAFLOW_S3_RETRY_BUDGET_S) rides out longer outages
            "extra": {
                "endpoint_url": self.s3_client_url,
                "region_name": "us-east-1",
                "config_kwargs": {
                    "retries": {"mode": "standard", "max_attempts": 2},
                    "connect_timeout": 5,
                    "read_timeout": 60,
                },
            },
        }
        smtp = f"smtp://{HOST}:{self.smtp_port}?disable_ssl=true&disable_tls=true&from_email=mediaflow%40localhost"
        # The stack defines Airflow's whole configuration: settings inherited from the caller's shell (or a
        # test session's throw-away AIRFLOW_HOME) must not leak into it.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return {
            **inherited,
            # standalone starts its parts as `airflow ...` found on PATH: the venv's bin must come first
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")]),
            "AIRFLOW_HOME": str(self.airflow_home),
            # PostgreSQL started by the stack: concurrent writers (SQLite took one at a time and failed the API
            # server's writes under a night's load); the async engine (asyncpg) is derived from this URL
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg_url("airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # LocalExecutor whose workers fork with the DAG files' imports loaded: a task's start costs milliseconds
            # of parsing instead of ~1 s of CPU (docs/performance.md)
            "AIRFLOW__CORE__EXECUTOR": "mediaflow_airflow.executor.PreloadingLocalExecutor",
            # task slots (MEDIAFLOW_PARALLELISM, default 3 per core): light tasks (S3 copies, checks, API calls) run
            # beside the ffmpeg work, which the `media` pool holds to one per core (mediaflow.capacity)
            "AIRFLOW__CORE__PARALLELISM": str(capacity().parallelism),
            # the scheduler's sleep when a loop found nothing to do (default 1 s): a finished task's downstream is
            # queued within a quarter second
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in USERS.items()),
            "AIRFLOW__API__PORT": str(self.airflow_port),
            # served under a path (MEDIAFLOW_BASE_PATH): the API server routes and the UI links under it
            **({"AIRFLOW__API__BASE_URL": f"{self.api_url}/"} if self.base_path else {}),
            "AIRFLOW__API__HOST": HOST,
            # task supervisors reach the API server here; the default assumes port 8080
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            # on 2 busy cores a task's first call to the execution API can take longer than the default 5 s
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # The control plane under a night's load (docs/performance.md, "Control plane under load"). A DAG file
            # parses in well under a second; a parse still running after 180 s is hung, not slow (the default 50 s
            # killed parses the busy machine had only delayed).
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
            # A DAG is deactivated when its file's latest parse ended more than this after the DAG was last written:
            # a killed or failed parse counts as one that ended. 900 s = four killed parses in a row (each 180 s,
            # 60 s apart: 16 minutes of a hung file) before a DAG whose file exists is deactivated; a stream whose
            # spec was removed leaves within about 15 minutes. (A deleted DAG file deactivates its DAGs at the next refresh, whatever this.)
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "900",
            # each file is parsed again every 60 s (default 30): the DAG files change only when a spec is edited,
            # and every parse is a process of CPU the night's media work could use
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            # new and deleted DAG files are seen within 20 s (listing dags/ is cheap; a changed file is re-parsed then)
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
            # two parsing processes (the default): one hung file never holds back the others
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
            # every value-stream run holds its SLA watcher (a deferred trigger) for its whole life and a run awaiting
            # human review its HITL wait too: a night of 300 titles is up to ~600 triggers; beyond the capacity
            # triggers wait unassigned (the SLA is not watched), so 1000 (Airflow's default, stated on purpose)
            "AIRFLOW__TRIGGERER__CAPACITY": "1000",
            # the scheduler looks at 50 runs per loop (default 20): with hundreds of runs alive a finished task's
            # successor is queued within a few loops, not fifteen; and it may queue as many task instances per loop
            # as there are executor slots (0 = [core] parallelism; default 16)
            "AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "50",
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "0",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp,
            **(
                {
                    "AIRFLOW_CONN_MEDIAFLOW_AIRFLOW_API": json.dumps(
                        {
                            "conn_type": "http",
                            "host": HOST,
                            "port": self.api_client_port or self.airflow_port,
                            "schema": "http",
                            "login": SERVICE_USER,
                            "password": self.password(SERVICE_USER),
                            **({"extra": {"base_path": self.base_path}} if self.base_path else {}),
                        }
                    )
                }
                if self.password(SERVICE_USER)
                else {}
            ),  # fmt: skip
            "AIRFLOW_CONN_MEDIAFLOW_LEDGER": json.dumps(self.postgres.connection("ledger")),
            "MEDIAFLOW_LEDGER_SPOOL": str(self.state_dir / "ledger-spool"),
            # a title's source is read from the S3 API once per machine, not by ingest, transcode and QC each
            "MEDIAFLOW_CACHE_DIR": str(self.state_dir / "cache"),
            "MEDIAFLOW_UI_URL": self.api_url,
            "AWS_ACCESS_KEY_ID": LOCAL_S3_KEY,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MEDIAFLOW_S3_ENDPOINT": self.s3_client_url,
            "MEDIAFLOW_STACK_DIR": str(self.state_dir),
            "MEDIAFLOW_OUT_DIR": str(self.out_dir),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    @property
    def password_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    def password(self, user: str = "admin") -> str | None:
        try:
            return json.loads(self.password_file.read_text()).get(user)
        except (OSError, ValueError):
            return None

    def _ensure_passwords(self) -> None:
        """Every user's password is ours to choose (SimpleAuthManager keeps passwords already in its file), so the
        batch's API connection can carry the service account's, and Airflow generates none: it would print a
        password it generates into logs/airflow.log."""
        import secrets

        try:
            known = json.loads(self.password_file.read_text())
        except (OSError, ValueError):
            known = {}
        missing = [user for user in USERS if user not in known]
        if missing:
            known.update({user: secrets.token_urlsafe(18) for user in missing})
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(json.dumps(known) + "\n")

    @property
    def s3_secret(self) -> str:
        """This stack's S3 secret key, made on first use and kept in the state folder (mode 600)."""
        import secrets

        path = self.state_dir / "s3_secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".s3_secret.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
        try:
            os.link(tmp, path)  # complete or absent: a process making it at the same moment keeps the first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_text().strip()

    # ------------------------------------------------------------ process control
    def _alive(self, service: str) -> int | None:
        """The pid of a running service we started, None otherwise; a stale pid file is reported and removed."""
        pf = self.pid_file(service)
        if not pf.exists():
            return None
        try:
            pid = int(pf.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            print(f"[stack] {service}: stale pid file {pf} (process gone) - removed")
            pf.unlink(missing_ok=True)
            return None
        except PermissionError:
            pass
        return pid

    def _check_port(self, service: str, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                var = {
                    "s3": "MEDIAFLOW_S3_PORT",
                    "smtp": "MEDIAFLOW_SMTP_PORT",
                    "airflow": "MEDIAFLOW_AIRFLOW_PORT",
                    "postgres": "MEDIAFLOW_PG_PORT",
                }[service]
                raise StackError(
                    f"{service}: port {HOST}:{port} is already in use by another process. Stop it, or choose "
                    f"another port with {var}=<port>."
                ) from None

    def _spawn(self, service: str, argv: list[str], *, env: dict | None = None, as_user: dict | None = None) -> int:
        """Start a service in its own process group (`down` ends it and all its children), with the stack's
        environment unless `env` is given, as another user when `as_user` (Popen's user, group, extra_groups) says
        so (PostgreSQL as Debian's `postgres` under root)."""
        self.log_file(service).parent.mkdir(parents=True, exist_ok=True)
        self.pid_file(service).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(service), "ab") as log:
            proc = subprocess.Popen(
                argv, env=self.env() if env is None else env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=PROJECT, start_new_session=True, **(as_user or {}),
            )  # fmt: skip
        self.pid_file(service).write_text(str(proc.pid))
        return proc.pid

    def _start_postgres(self) -> None:
        """Start the stack's PostgreSQL (initdb on first use) and wait until it takes connections."""
        pg = self.postgres
        try:
            pg.init()
            argv = pg.argv()
        except PostgresError as e:
            raise StackError(str(e)) from None
        pid = self._spawn("postgres", argv, env=pg.env(), as_user=pg.as_user())
        print(f"[stack] postgres: started (pid {pid}) on {HOST}:{self.pg_port}, data {pg.data_dir}, "
              f"log {self.log_file('postgres')}")  # fmt: skip
        self._wait("postgres", pg.ready, 60)

    def _wait(self, service: str, ready, timeout: float, progress=None) -> None:
        """Wait until `ready()`; `progress`, when given, is called with the seconds waited every BOOT_PROGRESS_EVERY
        seconds and returns the line to print (a long wait says what it waits for)."""
        started = time.monotonic()
        deadline = started + timeout
        said = started
        while time.monotonic() < deadline:
            if self._alive(service) is None:
                tail = self.log_file(service).read_text(errors="replace")[-1500:]
                raise StackError(f"{service} exited during start-up; last log lines:\n{tail}")
            if ready():
                return
            if progress is not None and time.monotonic() - said >= BOOT_PROGRESS_EVERY:
                said = time.monotonic()
                print(progress(said - started), flush=True)
            time.sleep(0.5)
        raise StackError(f"{service} not ready after {timeout:.0f}s; see {self.log_file(service)}")

    def _airflow_components(self) -> list[str]:
        """The Airflow components `airflow standalone` has started so far (its child processes' subcommands)."""
        import psutil

        pid = self._alive("airflow")
        if pid is None:
            return []
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            return []
        seen = set()
        for child in children:
            try:
                # the API server retitles itself "airflow api_server -- host:..." once it runs
                seen.update({part.replace("_", "-") for part in child.cmdline()} & set(AIRFLOW_COMPONENTS))
            except psutil.Error:
                continue
        return [c for c in AIRFLOW_COMPONENTS if c in seen]

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status < 500
        except urllib.error.HTTPError as e:
            return e.code < 500
        except OSError:
            return False

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((HOST, port)) == 0

    def up(self) -> None:
        py = sys.executable
        bin_dir = Path(py).parent
        plan = {
            "postgres": (self.pg_port, None),
            "s3": (self.s3_port, self.s3_argv()),
            "smtp": (
                self.smtp_port,
                [
                    py,
                    "-m",
                    "mediaflow_dev.smtp_sink",
                    "--host",
                    HOST,
                    "--port",
                    str(self.smtp_port),
                    "--dir",
                    str(self.out_dir / "mail"),
                ],
            ),  # fmt: skip
            "airflow": (self.airflow_port, [str(bin_dir / "airflow"), "standalone"]),
        }
        running = {s for s in SERVICES if self._alive(s)}
        booted = None  # when Airflow's start began (its DB migration), if this `up` starts it
        for service in SERVICES:
            if service not in running:
                self._check_port(service, plan[service][0])
        for service in SERVICES:
            if service in running:
                print(f"[stack] {service}: already running (pid {self._alive(service)})")
                continue
            if service == "postgres":
                self._start_postgres()
                continue
            if service == "s3":  # a fresh S3 API: the runs of an earlier stack are retired (PostgreSQL is up)
                self._retire_stale_runs()
            if service == "airflow":
                self._create_databases()
                booted = time.monotonic()
                self._prepare_airflow()
            pid = self._spawn(service, plan[service][1])
            print(f"[stack] {service}: started (pid {pid}), log {self.log_file(service)}")
            if service == "s3":
                self._wait("s3", lambda: self._http_ok(self.s3_url + "/moto-api/"), 60)
                self.create_buckets()
            elif service == "smtp":
                self._wait("smtp", lambda: self._port_open(self.smtp_port), 30)
        booting = time.monotonic()
        self._wait("airflow", lambda: self._http_ok(self.api_url + "/api/v2/monitor/health"), 240,
                   progress=lambda s: boot_line(s, self._airflow_components()))  # fmt: skip
        # The execution API (what task processes call) is built on its first request, which then takes ~4 s and
        # shows in the first task's start time: build it now.
        urllib.request.urlopen(self.api_url + "/execution/health", timeout=120).close()
        if booted is not None:  # this `up` started it: from its DB migration to an answering API
            now = time.monotonic()
            print(f"[stack] airflow: ready in {elapsed(now - booted)} (DB migration and pools {elapsed(booting - booted)}, "
                  f"then the boot {elapsed(now - booting)})", flush=True)  # fmt: skip
        print(f"[stack] Airflow UI {self.api_url}  login admin / {self.password()}")
        print(f"[stack] S3 API {self.s3_url}  SMTP {HOST}:{self.smtp_port} -> {self.out_dir / 'mail'}/<n>.eml")

    def _retire_stale_runs(self) -> None:
        """The local S3 API keeps its index in memory (the objects' bytes on disk, deleted with it): a fresh one
        starts empty. Airflow's runs and the ledger from an
        earlier `up` would then point at objects that are gone (and the batch's deterministic run ids would adopt
        those runs: titles 'failed' with no outcome). Their databases are renamed airflow_prev_<time> and
        ledger_prev_<time> on the stack's PostgreSQL, kept, not dropped; `up` then makes fresh ones."""
        from mediaflow_dev.pgserver import DATABASES

        if not set(DATABASES) & set(self.postgres.databases()):
            return
        if self._alive("airflow"):
            raise StackError("Airflow is running but the S3 API is not: `make down`, then `make up`")
        try:
            moved = self.postgres.retire()
        except PostgresError as e:
            raise StackError(str(e)) from None
        print(
            f"[stack] the S3 API starts empty (its objects do not outlive it): the earlier Airflow runs and ledger "
            f"are kept as databases {', '.join(moved)} on {HOST}:{self.pg_port}"
        )

    def _create_databases(self) -> None:
        """Airflow's metadata DB and the ledger, where missing (a first `up`, or one after a retirement)."""
        try:
            self.postgres.create_databases()
        except PostgresError as e:
            raise StackError(str(e)) from None

    def previous_runs(self) -> list[str]:
        """The databases of earlier stacks that `up` retired (see _retire_stale_runs), oldest first."""
        return [db for db in self.postgres.databases() if "_prev_" in db]

    def _prepare_airflow(self) -> None:
        """Migrate the DB and create the pools (mediaflow.capacity) before the scheduler starts."""
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self._ensure_passwords()
        airflow = str(Path(sys.executable).parent / "airflow")
        pools = [["pools", "set", p.name, str(p.slots), p.description] for p in capacity().pools()]
        started = time.monotonic()
        print("[stack] airflow: migrating its metadata DB and setting the pools ...", flush=True)
        for command in (["db", "migrate"], *pools):
            argv = [airflow, *command]
            proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True, cwd=PROJECT)
            if proc.returncode != 0:
                raise StackError(f"{' '.join(argv[1:])} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
        print(f"[stack] airflow: metadata DB and pools ready in {elapsed(time.monotonic() - started)}", flush=True)

    def s3_client(self):
        """A boto3 client for the stack's S3 API (used by the stack itself, make run and the tests)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id=LOCAL_S3_KEY,
                            aws_secret_access_key=self.s3_secret, region_name="us-east-1")  # fmt: skip

    def create_buckets(self) -> None:
        s3 = self.s3_client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        buckets = Buckets.from_env()
        for bucket in buckets.all():
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        # the rights catalog starts as the seed in include/rights/avails.csv (make run merges DELIVERIES/avails.csv)
        from mediaflow.compliance import RIGHTS_KEY

        if not s3.list_objects_v2(Bucket=buckets.reports, Prefix=RIGHTS_KEY).get("Contents"):
            s3.upload_file(str(PROJECT / "include" / "rights" / "avails.csv"), buckets.reports, RIGHTS_KEY)

    def restart_scheduler(self, grace: float = 15.0) -> int:
        """Stop the scheduler that `airflow standalone` started and start a new one on its own (service
        `scheduler`), the rest of the stack untouched, as an operator restarting a scheduler does: SIGTERM, and
        SIGKILL after `grace` seconds (a scheduler shutting down waits for its executor's tasks). Returns its pid."""
        import psutil

        pid = self._alive("scheduler")
        if pid is None:
            root = self._alive("airflow")
            if root is None:
                raise StackError("airflow is not running")
            found = [p for p in psutil.Process(root).children() if "scheduler" in " ".join(p.cmdline()).split()]
            if not found:
                raise StackError("no scheduler process under airflow standalone")
            pid = found[0].pid
        proc = psutil.Process(pid)
        proc.terminate()
        try:
            proc.wait(grace)
        except psutil.TimeoutExpired:
            proc.kill()
        new = self._spawn("scheduler", [str(Path(sys.executable).parent / "airflow"), "scheduler"])
        print(f"[stack] scheduler: restarted (pid {pid} -> {new})")
        return new

    def fresh_airflow(self) -> None:
        """A new Airflow on the same object store: Airflow stopped, its metadata DB and the ledger retired (kept as
        <db>_prev_<time>, as `up` does after a fresh S3 API), then `up` starts Airflow on fresh ones; the S3 API,
        its buckets and objects, the SMTP sink and PostgreSQL stay up. What a redeploy of Airflow against a kept
        bucket looks like (the distribution bucket behind a CDN outlives any Airflow)."""
        if pid := self._alive("scheduler"):
            _stop_group(pid)
            self.pid_file("scheduler").unlink(missing_ok=True)
        if pid := self._alive("airflow"):
            _stop_group(pid)
            self.pid_file("airflow").unlink(missing_ok=True)
        try:
            self.postgres.retire()
        except PostgresError as e:
            raise StackError(str(e)) from None
        self.up()

    def down(self) -> None:
        if pid := self._alive("scheduler"):  # a scheduler started by restart_scheduler
            _stop_group(pid)
            self.pid_file("scheduler").unlink(missing_ok=True)
        for service in reversed(SERVICES):
            pid = self._alive(service)
            if pid is None:
                print(f"[stack] {service}: not running")
                continue
            # PostgreSQL: SIGINT is its fast shutdown (sessions ended, a clean checkpoint); SIGTERM would wait for
            # every client to leave
            _stop_group(pid, first=signal.SIGINT if service == "postgres" else signal.SIGTERM)
            self.pid_file(service).unlink(missing_ok=True)
            print(f"[stack] {service}: stopped (pid {pid})")

    def clean(self) -> None:
        """Stop the stack and delete its state: Airflow's home, the databases (earlier runs included), logs."""
        import shutil

        self.down()
        self.postgres.remove()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> dict[str, int | None]:
        return {s: self._alive(s) for s in SERVICES}

    def is_up(self) -> bool:
        return all(self.status().values())


def _stop_group(pid: int, grace: float = 30.0, first: int = signal.SIGTERM) -> None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, first)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:  # reap it when we are its parent (make run starts and stops the stack itself)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.3)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    stack = Stack.from_env()
    cmd = argv[0] if argv else "status"
    try:
        if cmd == "up":
            stack.up()
        elif cmd == "down":
            stack.down()
        elif cmd == "clean":
            stack.clean()
        elif cmd == "status":
            for service, pid in stack.status().items():
                print(f"{service}: {f'running (pid {pid})' if pid else 'stopped'}")
        elif cmd == "env":
            for k, v in stack.env().items():
                if k.startswith(("AIRFLOW", "MEDIAFLOW", "PYTHONPATH", "AWS_")):
                    print(f"export {k}='{v}'")
        else:
            print(__doc__)
            return 2
    except StackError as e:
        print(f"[stack] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
