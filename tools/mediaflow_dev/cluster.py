"""The distributed deployment as plain processes, without Docker: what docker-compose.yaml runs, on one host.

PostgreSQL (Debian's) holds Airflow's metadata DB and the stage ledger, Redis is the Celery broker, and Airflow runs
as separate processes: api-server, scheduler, dag-processor, triggerer and N Celery workers (CeleryExecutor), each
worker with its own Celery hostname (`airflow celery worker -H`) and its own task-instance hostname
(MEDIAFLOW_HOSTNAME, read by `node_name`, Airflow's [core] hostname_callable here). S3 is moto server (mediaflow_dev.s3local) and SMTP the
project's sink, as on the embedded stack: MinIO and Mailpit are docker-compose's.

Usage: python -m mediaflow_dev.cluster up|down  (state in MEDIAFLOW_STACK_DIR, ports as devstack plus
MEDIAFLOW_PG_PORT, MEDIAFLOW_REDIS_PORT; MEDIAFLOW_WORKERS workers). The integration test
tests/integration/test_celery_cluster.py starts one on free ports in a throw-away folder.

PostgreSQL is the embedded stack's (mediaflow_dev.pgserver, started by Stack._start_postgres); the cluster is
throw-away: `down` deletes its data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mediaflow_dev.devstack import HOST, Stack, StackError

AIRFLOW_PARTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def node_name() -> str:
    """Airflow's [core] hostname_callable on the cluster: a worker's name when it has one (two workers share one
    host here, each with its own name), the host's FQDN otherwise."""
    return os.environ.get("MEDIAFLOW_HOSTNAME") or socket.getfqdn()


def redis_bin() -> str:
    path = shutil.which("redis-server")
    if not path:
        raise StackError(
            "redis-server not found: install Debian's redis-server (sudo apt-get install "
            "--no-install-recommends redis-server; `make scale-deps` does it as root)"
        )
    return path


@dataclass(frozen=True)
class Cluster(Stack):
    redis_port: int = 6379
    workers: tuple[str, ...] = ("worker-1", "worker-2")
    worker_concurrency: int = 2
    # how long a task may go without a heartbeat before the scheduler fails it (and it retries): a dead worker's
    # tasks are taken back after this (Airflow's default is 300 s)
    heartbeat_timeout_s: int = 20
    extra_env: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_env(cls, **over) -> Cluster:
        base = Stack.from_env()
        env = os.environ
        n = int(env.get("MEDIAFLOW_WORKERS", 2))
        kw = dict(state_dir=base.state_dir, out_dir=base.out_dir, airflow_port=base.airflow_port, s3_port=base.s3_port,
                  smtp_port=base.smtp_port, pg_port=base.pg_port,
                  redis_port=int(env.get("MEDIAFLOW_REDIS_PORT", 6379)),
                  workers=tuple(f"worker-{i + 1}" for i in range(n)))  # fmt: skip
        kw.update(over)
        return cls(**kw)

    # ------------------------------------------------------------ configuration
    @property
    def jwt_secret(self) -> str:
        """One secret for every Airflow process: the api-server signs the task tokens the workers present."""
        path = self.state_dir / "jwt_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{HOST}:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": self.pg_url("airflow", "db+postgresql+psycopg2"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CORE__PARALLELISM": str(self.worker_concurrency * len(self.workers)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mediaflow_dev.cluster.node_name",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout_s),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # a task message a dead worker had taken but not started is sent again after this
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        })  # fmt: skip
        env.update(self.extra_env)
        return env

    def worker_env(self, name: str) -> dict[str, str]:
        return {**self.env(), "MEDIAFLOW_HOSTNAME": name}

    # ------------------------------------------------------------ processes
    def services(self) -> list[str]:
        return ["postgres", "redis", "s3", "smtp", *AIRFLOW_PARTS, *self.workers]

    def _alive(self, service: str) -> int | None:
        pf = self.pid_file(service)
        try:  # reap it first when it is our child: a dead child stays a zombie, and os.kill(zombie, 0) succeeds
            if pf.exists() and os.waitpid(int(pf.read_text().strip()), os.WNOHANG)[0]:
                return None
        except (ChildProcessError, ValueError):
            pass
        return super()._alive(service)

    def _start_redis(self) -> None:
        argv = [redis_bin(), "--port", str(self.redis_port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", str(self.state_dir), "--daemonize", "no"]  # fmt: skip
        pid = self._spawn("redis", argv)
        print(f"[cluster] redis: started (pid {pid}) on {HOST}:{self.redis_port}")
        self._wait("redis", lambda: self._port_open(self.redis_port), 30)

    def up(self, *, workers: tuple[str, ...] | None = None) -> None:
        """Start everything; `workers` (default: all) are the Celery workers started now (start_worker: later)."""
        started = time.monotonic()
        workers = self.workers if workers is None else workers
        for service, port in (("postgres", self.pg_port), ("redis", self.redis_port)):
            if self._port_open(port):
                raise StackError(f"{service}: port {HOST}:{port} is already in use")
        self._start_postgres()
        self._create_databases()
        self._start_redis()
        py, bin_dir = sys.executable, Path(sys.executable).parent
        self._spawn("s3", self.s3_argv())
        self._spawn("smtp", [py, "-m", "mediaflow_dev.smtp_sink", "--host", HOST, "--port", str(self.smtp_port),
                             "--dir", str(self.out_dir / "mail")])  # fmt: skip
        self._prepare_airflow()  # db migrate (PostgreSQL) and the transcode pool, meanwhile S3 starts
        self._wait("s3", lambda: self._http_ok(self.s3_url + "/moto-api/"), 60)
        self.create_buckets()
        airflow = str(bin_dir / "airflow")
        for part in AIRFLOW_PARTS:
            self._spawn(part, [airflow, *part.split()])
        for name in workers:
            self._spawn_worker(name)
        self._wait("api-server", lambda: self._http_ok(self.api_url + "/api/v2/monitor/health"), 240)
        import urllib.request

        urllib.request.urlopen(self.api_url + "/execution/health", timeout=120).close()
        for name in workers:
            self._wait_worker(name)
        print(
            f"[cluster] up in {time.monotonic() - started:.0f}s: Airflow {self.api_url} (CeleryExecutor, "
            f"workers {', '.join(workers)}), PostgreSQL {HOST}:{self.pg_port}, Redis {HOST}:{self.redis_port}"
        )

    def _spawn_worker(self, name: str) -> None:
        # own Celery node name; no log server (one per host port; the logs are on this host's disk anyway)
        airflow = str(Path(sys.executable).parent / "airflow")
        self._spawn(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h",
                           "--concurrency", str(self.worker_concurrency), "--skip-serve-logs"],
                    env=self.worker_env(name))  # fmt: skip

    def _wait_worker(self, name: str) -> None:
        self._wait(name, lambda: "ready." in self.log_file(name).read_text(errors="replace"), 180)

    def start_worker(self, name: str) -> None:
        """Start (or add) a Celery worker and wait until it takes tasks."""
        self._spawn_worker(name)
        self._wait_worker(name)

    def kill_worker(self, name: str) -> int:
        """SIGKILL a worker's whole process group (Celery, its pool, task supervisors, tasks, ffmpeg), as when its
        machine dies. Returns the pid."""
        import signal

        pid = int(self.pid_file(name).read_text())
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        return pid

    def down(self, grace: float = 20.0) -> None:
        """SIGTERM to every process group we started, at once; SIGKILL to what is left after `grace` seconds."""
        import signal

        groups = []
        for service in self.services():
            pf = self.pid_file(service)
            try:
                pid = int(pf.read_text().strip())
                groups.append((pid, os.getpgid(pid)))
                # PostgreSQL: SIGINT, its fast shutdown (SIGTERM would wait for its clients to leave)
                os.killpg(os.getpgid(pid), signal.SIGINT if service == "postgres" else signal.SIGTERM)
            except (OSError, ValueError):
                pass
            pf.unlink(missing_ok=True)
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            for pid, pgid in list(groups):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    groups.remove((pid, pgid))
            time.sleep(0.2)
        for pid, pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass
        self.postgres.remove()


def main(argv: list[str]) -> int:
    cluster = Cluster.from_env()
    try:
        if argv[:1] == ["up"]:
            cluster.up()
        elif argv[:1] == ["down"]:
            cluster.down()
        else:
            print(__doc__)
            return 2
    except StackError as e:
        print(f"[cluster] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
