"""The per-run stage SLA watcher, a trigger: it lives in the triggerer, so it holds no worker slot, works with any
executor, and outlives scheduler restarts (Airflow re-creates a trigger from its serialized arguments).

Every `poll_s` it reads the run's attempts from the ledger, derives the stage spans, raises an alert for each stage
over its SLA (the ledger's outbox makes that once per run and stage, whoever looks and however often), and
delivers whatever is pending through SmtpNotifier. When the run's last task (`outcome`) has finished it makes one
last pass, so a stage that finished late between two looks still alerts, and ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


class StageSlaTrigger(BaseTrigger):
    def __init__(self, *, dag_id: str, run_id: str, value_stream: str, slas_s: dict[str, float], owners: list[str],
                 ui_url: str, poll_s: float = 20.0, hold_s: float = 900.0, ledger_conn_id: str = "mediaflow_ledger"):  # fmt: skip
        super().__init__()
        self.dag_id, self.run_id, self.value_stream = dag_id, run_id, value_stream
        self.slas_s, self.owners, self.ui_url = dict(slas_s), list(owners), ui_url
        self.poll_s, self.hold_s, self.ledger_conn_id = float(poll_s), float(hold_s), ledger_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("mediaflow_airflow.triggers.StageSlaTrigger", {
            "dag_id": self.dag_id, "run_id": self.run_id, "value_stream": self.value_stream, "slas_s": self.slas_s,
            "owners": self.owners, "ui_url": self.ui_url, "poll_s": self.poll_s, "hold_s": self.hold_s,
            "ledger_conn_id": self.ledger_conn_id})  # fmt: skip

    def _look(self):
        from mediaflow import alerts
        from mediaflow_airflow.hooks import LedgerHook

        ledger = LedgerHook(self.ledger_conn_id).get_conn()
        pending, over = alerts.watch_pass(ledger, dag_id=self.dag_id, run_id=self.run_id, stream=self.value_stream,
                                          slas_s=self.slas_s, owners=self.owners, ui_url=self.ui_url)  # fmt: skip
        return ledger, pending, over

    async def run(self):
        from mediaflow_airflow.notifiers import adeliver

        retry_at: dict[int, float] = {}
        over_since = None
        while True:
            try:
                ledger, pending, over = await asyncio.to_thread(self._look)
            except Exception as e:  # ledger down: keep watching, alerts are raised when it is back
                log.warning(
                    "SLA watch %s %s: ledger unavailable (%s: %s)", self.dag_id, self.run_id, type(e).__name__, e
                )
                await asyncio.sleep(self.poll_s)
                continue
            for alert in pending:
                if time.monotonic() >= retry_at.get(alert["id"], 0.0):
                    if await adeliver(ledger, alert) is False:  # SMTP down: back off, never drop (None: sent elsewhere)
                        retry_at[alert["id"]] = time.monotonic() + min(300.0, self.poll_s * 2 ** min(alert["tries"], 6))
                        log.warning("SLA watch: %r pending after %d tries", alert["subject"], alert["tries"] + 1)
            if over:
                over_since = over_since or time.monotonic()
                left = await asyncio.to_thread(ledger.pending_alerts, self.dag_id, self.run_id)
                if not left or time.monotonic() - over_since > self.hold_s:
                    sent = [
                        a
                        for a in await asyncio.to_thread(ledger.alerts, self.dag_id, self.run_id)
                        if a["status"] == "sent"
                    ]
                    if left:
                        log.error("SLA watch %s %s: %d alert(s) still undelivered after %.0fs; they stay pending in the "
                                  "ledger outbox", self.dag_id, self.run_id, len(left), self.hold_s)  # fmt: skip
                    yield TriggerEvent({"sent": [a["subject"] for a in sent], "pending": [a["subject"] for a in left]})
                    return
            await asyncio.sleep(self.poll_s)
