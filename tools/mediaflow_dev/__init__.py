"""mediaflow's dev and ops tooling: the embedded stack (devstack, pgserver, s3local, smtp_sink), the Celery deployment
as processes (cluster), the `make run` runner, the uploader, the benchmarks and the sample deliveries.

Run as `python -m mediaflow_dev.<module>` with PYTHONPATH include:plugins:tools. The tooling may import the domain
(`mediaflow`) and the REST client (`mediaflow_airflow.api_client`); the domain never imports this package, and the
production image does not carry it (tests/unit/test_layout.py holds both to that).
"""
