"""The embedded stack's parts a user relies on besides the DAGs: buckets, the SMTP sink, the UI login, its databases."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import urllib.request
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from mediaflow.ledger import Ledger
from mediaflow.store import Buckets
from mediaflow_dev.devstack import HOST

pytestmark = pytest.mark.integration


def test_buckets_exist_on_the_s3_api(s3):
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(Buckets.from_env().all()) <= names


def test_smtp_sink_writes_each_message_to_out_mail(stack):
    mail_dir = stack.out_dir / "mail"
    before = set(mail_dir.glob("*.eml"))
    for n in (1, 2):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "mediaflow@localhost", "vs-owner@example.com", f"probe {n}"
        msg.set_content(f"message {n}")
        with smtplib.SMTP(HOST, stack.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)
    new = sorted(set(mail_dir.glob("*.eml")) - before, key=lambda p: int(p.stem))
    assert len(new) == 2
    subjects = [BytesParser().parsebytes(p.read_bytes())["Subject"] for p in new]
    assert subjects == ["probe 1", "probe 2"]


def test_ui_login_works_with_the_printed_password(stack, api):
    assert stack.password()
    assert api.dag("value_stream__series_episode")["is_paused"] is False
    with urllib.request.urlopen(stack.api_url + "/", timeout=10) as r:
        assert r.status == 200


def test_airflow_and_the_ledger_run_on_the_stacks_postgresql(stack, api):
    """Airflow's metadata DB and the ledger take concurrent writers: both are databases of the PostgreSQL the stack
    started, as Airflow itself reports, what Airflow and the tasks wrote is there, and no SQLite file is made."""
    airflow = str(Path(sys.executable).parent / "airflow")
    proc = subprocess.run([airflow, "config", "get-value", "database", "sql_alchemy_conn"], env=stack.env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.strip() == stack.pg_url("airflow")
    assert stack.pg_url("airflow").startswith(
        "postgresql+psycopg2://postgres:"
    ) and f":{stack.pg_port}/" in stack.pg_url("airflow")
    assert api.dag("value_stream__series_episode")["is_stale"] is False
    assert (
        stack.postgres.sql("SELECT count(*) FROM dag WHERE dag_id = 'value_stream__series_episode'", db="airflow")
        == "1"
    )
    conn = json.loads(stack.env()["AIRFLOW_CONN_MEDIAFLOW_LEDGER"])
    assert (conn["conn_type"], conn["port"], conn["schema"]) == ("postgres", stack.pg_port, "ledger")
    assert Ledger(stack.ledger_url).engine.dialect.name == "postgresql"
    assert not [p for p in stack.state_dir.rglob("*.db") if p.is_file()], "no SQLite database"
