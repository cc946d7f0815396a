"""Alert outbox: alerts still pending after their run (the mail server was down) are sent again every 10 minutes
(MEDIAFLOW_OUTBOX_CRON) until they go through. See plugins/mediaflow_airflow/alert_outbox.py."""

from mediaflow_airflow.alert_outbox import alert_outbox_dag

alert_outbox = alert_outbox_dag()
