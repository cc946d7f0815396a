"""Unit-test fixtures: a real S3 API over HTTP (moto's server on a free port, in this process) and the Store
protocol on plain boto3 (the DAGs make the same calls through S3Hook)."""

from __future__ import annotations

import socket

import boto3
import pytest

from mediaflow.store import Buckets


class BotoStore:
    """The Store protocol on plain boto3 (the DAG uses the same calls through S3Hook)."""

    def __init__(self, client):
        self.c = client

    def list(self, bucket, prefix):
        out = {}
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = {
                    "size": o["Size"],
                    "etag": o["ETag"].strip('"'),
                    "last_modified": o["LastModified"].isoformat(),
                }
        return out

    def list_folders(self, bucket, prefix):
        out = []
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            out += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return out

    def upload(self, path, bucket, key):
        self.c.upload_file(path, bucket, key)

    def download(self, bucket, key, path):
        self.c.download_file(bucket, key, path)

    def put_bytes(self, data, bucket, key, *, cache_control=None):
        self.c.put_object(
            Bucket=bucket, Key=key, Body=data, **({"CacheControl": cache_control} if cache_control else {})
        )

    def get_bytes(self, bucket, key):
        return self.c.get_object(Bucket=bucket, Key=key)["Body"].read()

    def copy(self, sb, sk, db, dk, *, cache_control=None):
        extra = {"MetadataDirective": "REPLACE", "CacheControl": cache_control} if cache_control else None
        self.c.copy({"Bucket": sb, "Key": sk}, db, dk, ExtraArgs=extra)

    def delete(self, bucket, keys):
        if keys:
            self.c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})


@pytest.fixture(scope="module")
def server():
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    srv.start()
    yield f"http://127.0.0.1:{port}"
    srv.stop()


@pytest.fixture
def s3(server):
    client = boto3.client(
        "s3", endpoint_url=server, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    buckets = Buckets("landing", "work", "distribution", "quarantine", "reports")
    for b in buckets.all():
        try:
            client.create_bucket(Bucket=b)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        store = BotoStore(client)
        keys = list(store.list(b, ""))
        for i in range(0, len(keys), 1000):
            store.delete(b, keys[i : i + 1000])
    return BotoStore(client), buckets
