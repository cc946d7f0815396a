"""Upload deliveries to the landing bucket and tell Airflow they landed, so the content batch starts at once.

Usage: python -m mediaflow_dev.upload DIR [DIR ...]      (each DIR a delivery folder with its manifest.json)

The landing event is recorded on the `mediaflow_landing` Asset through Airflow's REST API (what an S3 event
notification bridge would do in production); nightly_content_batch is scheduled on that Asset as well as on its
cron, and applies the same rule: a delivery already processed is never started again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mediaflow.store import Buckets
from mediaflow_airflow.api_client import AirflowApi, ApiError
from mediaflow_dev.devstack import SERVICE_USER, Stack
from mediaflow_dev.runner import upload_delivery

LANDING_ASSET = "mediaflow_landing"  # nightly_content_batch is scheduled on it


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv]
    bad = [str(f) for f in folders if not (f / "manifest.json").is_file()]
    if not folders or bad:
        print(
            __doc__ if not folders else f"not a delivery folder (no manifest.json): {', '.join(bad)}", file=sys.stderr
        )
        return 2
    stack = Stack.from_env()
    s3, buckets = stack.s3_client(), Buckets.from_env()
    ids = [upload_delivery(s3, buckets, f) for f in folders]
    print(f"[upload] {', '.join(ids)} -> s3://{buckets.landing}/deliveries/")
    try:
        AirflowApi(stack.api_url, SERVICE_USER, stack.password(SERVICE_USER) or "").asset_event(
            LANDING_ASSET, {"deliveries": ids}
        )
    except ApiError as e:
        print(
            f"[upload] uploaded, but the landing event failed ({e}); the nightly batch will take them", file=sys.stderr
        )
        return 1
    print("[upload] landing event recorded: nightly_content_batch starts now")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
