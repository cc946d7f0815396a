"""The embedded stack's local S3 API: moto's server, with each object's bytes in a file of a data directory.

moto keeps every object's bytes in a tempfile.SpooledTemporaryFile (moto.s3.models.FakeKey): in memory up to
~5 MB (MOTO_S3_DEFAULT_KEY_BUFFER_SIZE), so every HLS segment of a night stays in the server's memory (a 98-min
title grew it past 1.2 GB). A smaller buffer would spill to an open temporary file per object: one file
descriptor per segment. moto 5.2.5 has no option for either. Here the buffer is a DiskValue: the object's bytes
in one file under --data-dir, opened only for the duration of a read, write or truncate, deleted when moto
disposes of the key (deleted, overwritten, or its bucket gone). A ranged GET (a multipart download) reads only
its range from the file, where moto reads the whole object for each; a multipart upload's parts are joined in a
file, where moto joins them in memory. The index (buckets, keys, metadata) stays in moto's memory, so objects do
not outlive the server: the data directory is emptied when the server starts and when it exits.

Usage: python -m mediaflow_dev.s3local -H 127.0.0.1 -p 9000 --data-dir .stack/s3
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import os
import threading
import types
from pathlib import Path

PREFIX = "obj-"


class DiskValue:
    """The file-like object moto's FakeKey keeps its value in (seek, tell, read, write, truncate, close), backed by
    one file that is open only during a call: no file descriptor per object."""

    _ids = itertools.count()

    def __init__(self, directory: Path, *_args, **_kwargs):  # SpooledTemporaryFile's max_size etc.: no use here
        self.path = os.path.join(directory, f"{PREFIX}{os.getpid()}-{next(self._ids)}")
        with open(self.path, "xb"):
            pass
        self._pos = 0
        self._given: int | None = None
        self.closed = False

    def _open(self, mode: str):
        if self.closed:
            raise ValueError("I/O operation on closed file")  # what FakeKey.__getstate__ expects of a deleted key
        return open(self.path, mode)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos}.get(whence)
        if base is None:
            with self._open("rb") as f:
                base = f.seek(0, os.SEEK_END)
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        with self._open("rb") as f:
            f.seek(self._pos)
            data = f.read(-1 if size is None else size)
        self._pos += len(data)
        return data

    def __bool__(self) -> bool:  # an empty object is still a file (len() is its size)
        return True

    def __len__(self) -> int:
        if self._given is not None:  # its file went to another DiskValue (write): how big it was
            return self._given
        with self._open("rb") as f:
            return f.seek(0, os.SEEK_END)

    def write(self, data: bytes) -> int:
        if isinstance(data, DiskValue) and self._pos == 0:  # parts joined on disk (_join_parts_on_disk): take the file
            os.replace(data.path, self.path)
            self._pos = data._given = len(self)
            data.closed = True
            return self._pos
        with self._open("r+b") as f:
            f.seek(self._pos)
            n = f.write(data)
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        with self._open("r+b") as f:
            f.truncate(size)
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __del__(self) -> None:
        self.close()


class DiskSlice:
    """An object's bytes as moto's ranged GET uses them (len, one slice), read from its file: moto reads the whole
    value and slices it for each Range request, so a multipart download of an N-part object read it N times."""

    def __init__(self, path: str, size: int):
        self.path, self.size = path, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(self.size)
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(max(0, stop - start))

    def __bytes__(self) -> bytes:
        return self[:]


_ranged = threading.local()


def _lazy_ranged_gets() -> None:
    """While moto answers a GET with a Range header, FakeKey.value is a DiskSlice (only len and one slice taken)."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    value = FakeKey.value

    def get_value(key):
        buffer = key.__dict__.get("_value_buffer")
        if getattr(_ranged, "on", False) and isinstance(buffer, DiskValue) and not buffer.closed:
            return DiskSlice(buffer.path, key.contentsize)
        return value.fget(key)

    FakeKey.value = property(get_value, value.fset)
    key_response = S3Response.key_response

    def ranged_key_response(self, request, full_url, headers):
        _ranged.on = request.method == "GET" and bool(request.headers.get("range"))
        try:
            status, response_headers, content = key_response(self, request, full_url, headers)
        finally:
            _ranged.on = False
        return status, response_headers, bytes(content) if isinstance(content, DiskSlice) else content

    S3Response.key_response = ranged_key_response


class FullObjectChecksum:
    """moto.s3.utils.compute_checksum over the whole object, one part at a time (its algorithms, its fallbacks to
    CRC32 without crc32c or awscrt): moto's MultipartChecksumBuilder keeps the whole object in memory for it."""

    def __init__(self, algorithm: str):
        import hashlib

        from moto.core.compat import HAS_CRT

        self.algorithm, self.crc, self.hash = algorithm, 0, None
        self.update_crc, width = _crc32, 4
        if algorithm == "SHA1":
            self.hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm == "CRC32C":
            try:
                import crc32c

                self.update_crc = lambda data, crc: crc32c.crc32c(data, crc)
            except ImportError:
                pass
        elif algorithm == "CRC64NVME" and HAS_CRT:
            from awscrt import checksums

            self.update_crc, width = checksums.crc64nvme, 8
        elif algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
            self.hash = hashlib.sha256(usedforsecurity=False)
        self.width = width

    def update(self, data: bytes) -> None:
        if self.hash is not None:
            self.hash.update(data)
        else:
            self.crc = self.update_crc(data, self.crc)

    def value(self) -> str:
        import base64

        digest = self.hash.digest() if self.hash is not None else self.crc.to_bytes(self.width, "big")
        return base64.b64encode(digest).decode()


def _crc32(data: bytes, crc: int) -> int:
    import binascii

    return binascii.crc32(data, crc)


def _join_parts_on_disk(directory: str) -> None:
    """CompleteMultipartUpload joins the parts in a file, where moto's FakeMultipart.complete joins them in memory
    (the object twice, four times with a whole-object checksum: a 1-GB upload peaked moto at 2.6 GB). The same
    checks, ETag and checksum; the joined file becomes the key's (DiskValue.write)."""
    import codecs

    from moto.s3 import models
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML

    def complete(self, body):
        builder = models.MultipartChecksumBuilder(self.metadata.get("x-amz-checksum-algorithm"),
                                                  self.metadata.get("x-amz-checksum-type"))  # fmt: skip
        whole = FullObjectChecksum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
        joined, md5s, last, count = DiskValue(directory), bytearray(), None, 0
        try:
            for pn, etag in body:
                part = self.parts.get(pn)
                if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
                    raise InvalidPart()
                if last is not None and last.contentsize < models.S3_UPLOAD_PART_MIN_SIZE:
                    raise EntityTooSmall()
                md5s.extend(codecs.decode(part.etag.replace('"', ""), "hex"))
                data = part.value
                joined.write(data)
                whole.update(data) if whole else builder.addPart(data)
                last, count = part, count + 1
            if count == 0:
                raise MalformedXML
        except BaseException:
            joined.close()
            raise
        checksum = (builder.checksum_type, whole.value(), 1) if whole else builder.build()
        return joined, f"{models.md5_hash(bytes(md5s)).hexdigest()}-{count}", checksum

    models.FakeMultipart.complete = complete


def empty(data_dir: Path) -> int:
    """Delete the object files in `data_dir` (those of an earlier server, or this one's on exit); their count."""
    n = 0
    for p in data_dir.glob(PREFIX + "*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def use_disk(data_dir: Path) -> None:
    """Make moto's S3 keep object values in files under `data_dir`: FakeKey makes its value buffer (in __init__,
    and in __setstate__ when moto copies a key) with moto.s3.models' tempfile.SpooledTemporaryFile."""
    from moto.s3 import models

    data_dir.mkdir(parents=True, exist_ok=True)
    directory = str(data_dir.resolve())
    models.tempfile = types.SimpleNamespace(SpooledTemporaryFile=lambda *a, **kw: DiskValue(directory, *a, **kw))
    _lazy_ranged_gets()
    _join_parts_on_disk(directory)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, default=9000)
    ap.add_argument("--data-dir", required=True, type=Path, help="where the objects' bytes are kept (emptied)")
    args = ap.parse_args(argv)
    data_dir = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if stale := empty(data_dir):
        print(f"s3local: deleted {stale} object files of an earlier server in {data_dir}", flush=True)
    use_disk(data_dir)
    atexit.register(empty, data_dir)  # moto's server exits through sys.exit on SIGTERM/SIGINT
    print(f"s3local: S3 API on http://{args.host}:{args.port}, object bytes in {data_dir}", flush=True)
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
