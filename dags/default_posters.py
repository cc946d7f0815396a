"""Default posters: on every update of the `mediaflow_feedback` Asset (audience_feedback ran), each title whose
poster A/B test declared a winner gets that candidate as its default poster, through the publish path (the title's
publish lease) and recorded in the ledger. See plugins/mediaflow_airflow/audience_feedback.py and docs/feedback.md.
"""

from mediaflow_airflow.audience_feedback import default_posters_dag

default_posters = default_posters_dag()
