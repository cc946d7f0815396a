"""PostgreSQL for the embedded stack and the Celery cluster: Debian's server, one per state folder, on its own port.

It holds Airflow's metadata DB (`airflow`) and the stage ledger (`ledger`), two databases of one server. The stack
starts it as one of its processes (pid file, log file, `down` stops it); this module knows the server itself: where
its data lives, its argv, its databases, its password.

- Debian keeps the server programs in /usr/lib/postgresql/<version>/bin, off PATH: the newest one is used.
- PostgreSQL refuses to run as root: as root it runs as Debian's `postgres` user. Its data lives in
  <state>/postgres when that user can reach the folder, otherwise in a folder of its own under the system's temp
  folder (a pytest tmp folder is mode 700, closed to `postgres`), named in <state>/pgdata.path.
- Only TCP on 127.0.0.1 (no Unix socket: no path-length or permission trouble), password authentication
  (scram-sha-256) with a random password kept in <state>/pg_password (mode 600): another local user cannot reach
  the metadata DB, nor run programs through a superuser's `COPY ... TO PROGRAM`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DATABASES = ("airflow", "ledger")
ROLE = "postgres"
# Airflow's processes each hold a sync and an async pool (pool_size 5 + max_overflow 10 each, per process): the four
# processes of `airflow standalone` may open up to 4 x 30 = 120 connections, and the ledger's engines (task
# processes, the SLA watchers in the triggerer, the dashboard, the runner) up to 4 per process on top. The default
# of 100 lets a burst fail with "too many clients", which fails a task; an idle connection costs ~2 MB only
# once it is opened, so 200 costs nothing while unused.
SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "64MB",  # a night's metadata DB and ledger are tens of MB
    # a commit returns before its WAL reaches the disk: a crash of the machine loses at most the last ~0.6 s of
    # commits (never corrupts); Airflow commits many small transactions
    "synchronous_commit": "off",
    "unix_socket_directories": "",
}


class PostgresError(RuntimeError):
    pass


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise PostgresError(f"PostgreSQL's {name} not found: install Debian's postgresql (sudo apt-get install "
                            "--no-install-recommends postgresql; `make deps` does it as root)")  # fmt: skip
    return path


@dataclass(frozen=True)
class PostgresServer:
    state_dir: Path
    port: int

    # ------------------------------------------------------------ where and who
    @property
    def os_user(self) -> str | None:
        """The user the server runs as: Debian's `postgres` when we are root (PostgreSQL refuses root), else us."""
        return "postgres" if os.geteuid() == 0 else None

    def as_user(self) -> dict:
        """Popen arguments that run a process as `os_user`: its uid, its group, none of root's groups."""
        user = self.os_user
        return {"user": user, "group": user, "extra_groups": []} if user else {}

    @property
    def root(self) -> Path:
        """The folder holding the data folder: <state>/postgres, or one `postgres` can reach (see module doc)."""
        link = self.state_dir / "pgdata.path"
        if link.exists():
            return Path(link.read_text().strip())
        inside = self.state_dir / "postgres"
        if inside.exists() or self._reachable(self.state_dir):
            return inside
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="mediaflow-pg-"))
        link.write_text(str(path))
        return path

    def _reachable(self, folder: Path) -> bool:
        if self.os_user is None:
            return True
        folder.mkdir(parents=True, exist_ok=True)
        return subprocess.run(["test", "-x", str(folder)], cwd="/", **self.as_user()).returncode == 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def password(self) -> str:
        """The role's password, made on first use and kept in the state folder (mode 600)."""
        path = self.state_dir / "pg_password"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        return path.read_text().strip()

    def url(self, db: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{ROLE}:{self.password}@{HOST}:{self.port}/{db}"

    def connection(self, db: str) -> dict:
        """An Airflow connection (conn_type postgres) to one of the databases."""
        return {"conn_type": "postgres", "host": HOST, "port": self.port, "login": ROLE, "password": self.password,
                "schema": db}  # fmt: skip

    # ------------------------------------------------------------ the server
    def init(self) -> None:
        """initdb, once: an existing data folder (with its databases and retired runs) is kept."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        root, user = self.root, self.os_user
        root.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(root, user, user)
        pwfile = root / ".pwfile"
        with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.password + "\n")
        if user:
            shutil.chown(pwfile, user, user)
        try:
            proc = subprocess.run([postgres_bin("initdb"), "-D", str(self.data_dir), "-U", ROLE, "--pwfile", str(pwfile),
                                   "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"],
                                  capture_output=True, text=True, cwd="/", **self.as_user())  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise PostgresError(f"initdb failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")

    def argv(self) -> list[str]:
        settings = [arg for key, value in SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        return [postgres_bin("postgres"), "-D", str(self.data_dir), "-h", HOST, "-p", str(self.port), *settings]

    @staticmethod
    def env() -> dict[str, str]:
        """The server's environment: nothing of the stack's (its secrets stay out of the server's processes)."""
        return {"PATH": os.environ.get("PATH", ""), "LANG": "C"}

    def ready(self) -> bool:
        return self.sql("SELECT 1") == "1"

    def sql(self, statement: str, db: str = "postgres") -> str | None:
        """One statement in autocommit; the first column of its first row as text ("" when none, "ok" when it
        returns no rows at all), None when the server cannot be reached."""
        import psycopg2

        try:
            conn = psycopg2.connect(host=HOST, port=self.port, user=ROLE, password=self.password, dbname=db,
                                    connect_timeout=3)  # fmt: skip
        except psycopg2.OperationalError:
            return None
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
                row = cur.fetchone() if cur.description else ("ok",)
            return str(row[0]) if row else ""
        finally:
            conn.close()

    def databases(self) -> list[str]:
        import psycopg2

        conn = psycopg2.connect(host=HOST, port=self.port, user=ROLE, password=self.password, dbname="postgres",
                                connect_timeout=3)  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")
                return [r[0] for r in cur.fetchall()]
        finally:
            conn.close()

    def create_databases(self) -> None:
        have = set(self.databases())
        for db in DATABASES:
            if db not in have and self.sql(f'CREATE DATABASE "{db}"') is None:
                raise PostgresError(f"could not create database {db}")

    def retire(self, *, stamp: str | None = None) -> list[str]:
        """Rename the databases to <db>_prev_<stamp> (kept, not dropped) so that fresh ones can be made; returns
        the new names. Sessions still connected to them are ended first (a rename needs none)."""
        stamp = stamp or time.strftime("%Y%m%d_%H%M%S")
        have = set(self.databases())
        moved = []
        for db in DATABASES:
            if db not in have:
                continue
            new, n = f"{db}_prev_{stamp}", 1
            while new in have:
                n += 1
                new = f"{db}_prev_{stamp}_{n}"
            self.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
            if self.sql(f'ALTER DATABASE "{db}" RENAME TO "{new}"') is None:
                raise PostgresError(f"could not rename database {db} to {new}")
            moved.append(new)
        return moved

    def remove(self) -> None:
        """Delete the data folder (the server must be stopped): for throw-away stacks (tests, the cluster)."""
        shutil.rmtree(self.root, ignore_errors=True)
        (self.state_dir / "pgdata.path").unlink(missing_ok=True)
