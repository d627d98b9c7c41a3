"""An S3-protocol server on loopback for the object-storage tests and benchmark: moto's
standalone server (``python -m moto.server``, pip package ``moto[server]``) on a free
127.0.0.1 port, stopped by its process id. Import it with ``from s3server import S3Server``."""

import os
import sys
from pathlib import Path
from typing import Dict, List

from support import LoopbackServer

__all__ = ["S3Server"]


class S3Server(LoopbackServer):
    """moto's S3 server, and the environment that points boto3 at it.

    ``env`` holds what boto3 (TensorBoard's S3 layer, tensorboardX's S3 writer) reads:
    made-up credentials, a region and ``AWS_ENDPOINT_URL``. boto3 reads it whenever it makes a
    client, so it works in this process too once set in ``os.environ``. (TensorBoard's
    ``S3_ENDPOINT`` is read once, when its file layer is imported: fine for a new process.)
    """

    NAME = "moto"
    READY_PATH = "/moto-api/"

    def __init__(self, log_dir):
        super().__init__(log_dir)
        self.env: Dict[str, str] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.url,
        }

    def command(self) -> List[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

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
