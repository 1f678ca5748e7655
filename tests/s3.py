"""moto's S3 server for tests: started in its own process on 127.0.0.1, stopped after.

delta-rs deadlocks with an in-process moto server, so it runs as a separate process (the
interpreter's own moto: an older `moto_server` on PATH answers pyarrow's
CompleteMultipartUpload with an empty body).
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time

BUCKET = "nplake-test"
KEY, SECRET = "test-key-id", "test-secret-7f3a9c"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoS3:
    """A running moto S3 server with one bucket; `uri()` gives each test its own prefix."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._names = itertools.count()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._make_bucket()

    @property
    def options(self) -> dict[str, str]:
        """Storage options for `lake.open`."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }

    @property
    def env(self) -> dict[str, str]:
        """The same settings as AWS environment variables (what the CLI reads)."""
        return dict(self.options)

    def uri(self, name: str = "lake") -> str:
        """A fresh s3:// prefix in the bucket."""
        return f"s3://{BUCKET}/{name}-{next(self._names)}"

    def client(self):
        """A boto3 client of the server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def _make_bucket(self) -> None:
        client = self.client()
        for _ in range(150):
            try:
                client.create_bucket(Bucket=BUCKET)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        msg = "moto's S3 server did not start"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Stop the server (nothing is left running)."""
        self.proc.kill()
        self.proc.wait()
