"""The embedded stack's parts a user relies on besides the DAGs: buckets, the SMTP sink, the UI login."""

from __future__ import annotations

import smtplib
import urllib.request
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from mediaflow.devstack import HOST
from mediaflow.store import Buckets

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
