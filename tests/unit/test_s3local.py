"""The embedded stack's S3 API (`python -m mediaflow_dev.s3local`, moto's server) over HTTP: what goes in comes back
byte for byte (sizes, ETags, listings, copies, deletes, multipart, ranges), and the bytes are files in its data
directory, not in the server's memory, with no file held open per object."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from mediaflow.store import MULTIPART_BYTES, transfer_config
from mediaflow_dev.devstack import PROJECT

BUCKET = "segments"


class Server:
    def __init__(self, data_dir: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data_dir = data_dir
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")]),
        }
        argv = [sys.executable, "-m", "mediaflow_dev.s3local", "-H", "127.0.0.1", "-p", str(self.port), "--data-dir",
                str(data_dir)]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"s3local did not start (exit {self.proc.poll()})") from None
                time.sleep(0.2)
        self.s3 = boto3.client("s3", endpoint_url=self.url, aws_access_key_id="k", aws_secret_access_key="s",
                               region_name="us-east-1")  # fmt: skip

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.data_dir.iterdir()}

    def status(self, field: str) -> int:
        line = next(ln for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ln.startswith(field))
        return int(line.split()[1])  # kB

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "s3")
    srv.s3.create_bucket(Bucket=BUCKET)
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def test_objects_come_back_byte_for_byte_and_live_as_files(server):
    s3 = server.s3
    bodies = {"hls/v0/seg_00000.m4s": os.urandom(150_000), "hls/v0/index.m3u8": b"#EXTM3U\n", "empty": b"",
              "captions/fr.vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nÇa va ?\n".encode()}  # fmt: skip
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    for key, body in bodies.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)
        assert got["Body"].read() == body
        assert got["ContentLength"] == len(body)
        assert got["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert listed == {k: len(b) for k, b in bodies.items()}
    # the bytes are in the data directory, one file per object
    assert sorted(server.files().values()) == sorted(bodies.values())

    s3.copy_object(
        Bucket=BUCKET, Key="published/seg_00000.m4s", CopySource={"Bucket": BUCKET, "Key": "hls/v0/seg_00000.m4s"}
    )
    assert s3.get_object(Bucket=BUCKET, Key="published/seg_00000.m4s")["Body"].read() == bodies["hls/v0/seg_00000.m4s"]
    assert len(server.files()) == len(bodies) + 1

    s3.put_object(
        Bucket=BUCKET, Key="hls/v0/index.m3u8", Body=b"#EXTM3U\n#EXT-X-ENDLIST\n"
    )  # overwritten: old file gone
    assert b"#EXTM3U\n" not in server.files().values()
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in bodies]})
    assert list(server.files().values()) == [bodies["hls/v0/seg_00000.m4s"]]  # the copy is all that is left
    s3.delete_object(Bucket=BUCKET, Key="published/seg_00000.m4s")
    assert server.files() == {}


def test_big_files_go_in_parts_and_come_back_by_ranges(server, tmp_path):
    source = tmp_path / "mezzanine.mov"
    source.write_bytes(os.urandom(2 * MULTIPART_BYTES + 12345))
    server.s3.upload_file(str(source), BUCKET, "mezz/mezzanine.mov", Config=transfer_config())
    head = server.s3.head_object(Bucket=BUCKET, Key="mezz/mezzanine.mov")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["ContentLength"] == source.stat().st_size
    assert list(server.files().values()) == [source.read_bytes()]  # the parts' files went with the upload

    back = tmp_path / "back.mov"
    server.s3.download_file(BUCKET, "mezz/mezzanine.mov", str(back), Config=transfer_config())  # ranged GETs
    assert back.read_bytes() == source.read_bytes()
    got = server.s3.get_object(Bucket=BUCKET, Key="mezz/mezzanine.mov", Range="bytes=100-199")
    assert got["Body"].read() == source.read_bytes()[100:200]
    assert got["ContentRange"] == f"bytes 100-199/{source.stat().st_size}"


def test_a_whole_object_checksum_is_moto_s(server, tmp_path):
    """Parts joined on disk, the object's checksum computed part by part: the same as moto's over the whole."""
    import base64
    import binascii

    from moto.s3.utils import compute_checksum

    from mediaflow_dev.s3local import FullObjectChecksum

    data = os.urandom(3 * 1_000_000 + 7)
    for algorithm in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"):
        checksum = FullObjectChecksum(algorithm)
        for i in range(0, len(data), 1_000_000):
            checksum.update(data[i : i + 1_000_000])
        assert checksum.value() == compute_checksum(data, algorithm).decode(), algorithm

    s3, parts, body = server.s3, [], os.urandom(2 * 5 * 2**20 + 100)
    upload = s3.create_multipart_upload(
        Bucket=BUCKET, Key="full", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    for n, start in enumerate(range(0, len(body), 5 * 2**20), start=1):
        got = s3.upload_part(Bucket=BUCKET, Key="full", UploadId=upload["UploadId"], PartNumber=n,
                             Body=body[start : start + 5 * 2**20], ChecksumAlgorithm="CRC32")  # fmt: skip
        parts.append({"PartNumber": n, "ETag": got["ETag"], "ChecksumCRC32": got["ChecksumCRC32"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="full", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    head = s3.head_object(Bucket=BUCKET, Key="full", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == base64.b64encode(binascii.crc32(body).to_bytes(4, "big")).decode()
    assert s3.get_object(Bucket=BUCKET, Key="full")["Body"].read() == body


def test_a_night_of_segments_stays_out_of_the_servers_memory(server):
    """300 MB of segments: the server grows far less than that, and holds no file open per object."""
    block = os.urandom(300_000)
    keys = [f"title/hls/v{i % 6}/seg_{i:05d}.m4s" for i in range(1000)]
    before = server.status("VmRSS")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: server.s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode() + block), keys))
    grown_mb = (server.status("VmRSS") - before) / 1024
    assert grown_mb < 100, f"the server grew {grown_mb:.0f} MB for 300 MB of objects"
    assert len(os.listdir(f"/proc/{server.proc.pid}/fd")) < 50
    assert sum(len(b) for b in server.files().values()) == sum(len(k) + len(block) for k in keys)
    assert server.s3.get_object(Bucket=BUCKET, Key=keys[-1])["Body"].read() == keys[-1].encode() + block


def test_object_files_do_not_outlive_the_server(server, tmp_path):
    server.s3.put_object(Bucket=BUCKET, Key="a", Body=b"x" * 1000)
    assert len(server.files()) == 1
    assert server.stop() == 0
    assert server.files() == {}  # stopped (SIGTERM, as `make down`): its files are deleted

    data = tmp_path / "s3"
    (data / "obj-1234-0").write_bytes(b"left by a server that was killed")
    (data / "notes.txt").write_text("not an object file")
    again = Server(data)
    try:
        assert list(again.files()) == ["notes.txt"]  # a fresh server starts empty, leaving other files alone
    finally:
        again.stop()


def test_a_published_title_exports_whole(server, tmp_path):
    """runner.download_folder (make run's out/published): every object, in its folder, byte for byte."""
    from mediaflow_dev.runner import download_folder

    bodies = {f"web/T1/hls/v{i % 4}/seg_{i:05d}.m4s": os.urandom(1000 + i) for i in range(300)}
    bodies["web/T1/master.m3u8"] = b"#EXTM3U\n"
    bodies["web/T2/master.m3u8"] = b"another title"
    for key, body in bodies.items():
        server.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    download_folder(server.s3, BUCKET, "web/T1/", tmp_path / "published", strip="web/")
    got = {p.relative_to(tmp_path / "published").as_posix(): p.read_bytes()
           for p in (tmp_path / "published").rglob("*") if p.is_file()}  # fmt: skip
    assert got == {k.removeprefix("web/"): b for k, b in bodies.items() if k.startswith("web/T1/")}
