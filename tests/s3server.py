"""An S3-protocol server on loopback for the object-storage tests and benchmark: moto's
standalone server (``python -m moto.server``, pip package ``moto[server]``) on a free
127.0.0.1 port, stopped by its process id. Import it with ``from s3server import S3Server``."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict

from support import free_port

__all__ = ["S3Server"]


class S3Server:
    """moto's S3 server, and the environment that points boto3 at it.

    ``env`` holds what boto3 (TensorBoard's S3 layer, tensorboardX's S3 writer) reads:
    made-up credentials, a region and ``AWS_ENDPOINT_URL``. boto3 reads it whenever it makes a
    client, so it works in this process too once set in ``os.environ``. (TensorBoard's
    ``S3_ENDPOINT`` is read once, when its file layer is imported: fine for a new process.)
    """

    def __init__(self, log_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env: Dict[str, str] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.url,
        }
        self.log = open(Path(log_dir) / f"moto-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited early:\n{self.output()}")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not answer in {timeout}s:\n{self.output()}")

    def client(self):
        """A boto3 S3 client on this server (whatever the process environment says)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, bucket: str, prefix: str = ""):
        """Every object key in ``bucket`` under ``prefix``, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def delete_bucket(self, bucket: str) -> None:
        client = self.client()
        for key in self.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)

    def download(self, bucket: str, prefix: str, dest) -> None:
        """Copy ``s3://bucket/prefix/...`` to ``dest/...`` (a local mirror of a logdir)."""
        client = self.client()
        for key in self.keys(bucket, prefix.rstrip("/") + "/"):
            if key.endswith("/"):  # a "directory" marker
                continue
            path = Path(dest) / os.path.relpath(key, prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(path))

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
