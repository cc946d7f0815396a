"""Audience feedback: viewing events (s3://mediaflow-landing/viewing-events/) validated with Great Expectations,
retention and completion per title and territory, localization recommendations, poster A/B tests, and the
priorities table the nightly batch orders its work by (reports bucket, feedback/latest/).

Schedule: MEDIAFLOW_FEEDBACK_CRON (default 01:30 UTC daily), and every update of the `mediaflow_viewing_events`
Asset. See plugins/mediaflow_airflow/audience_feedback.py and docs/feedback.md.
"""

from mediaflow_airflow.audience_feedback import audience_feedback_dag

audience_feedback = audience_feedback_dag()
