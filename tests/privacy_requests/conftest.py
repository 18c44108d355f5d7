"""A real S3-compatible object store for the export tests: moto's standalone server, started once.

The server runs as a subprocess on a free port, so the tests need nothing from the test command.
Each test gets its own bucket; the ``exports`` storage it uses is what ``portal/settings.py``
builds from the ``EXPORTS_S3_*`` environment variables (read in a subprocess), so the tests
exercise the production configuration, not a copy of it.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
S3_REGION = "eu-west-1"
S3_ACCESS_KEY = "test-access-key"
S3_SECRET_KEY = "test-secret-key"


@dataclass
class ObjectStore:
    """The moto server and one bucket of it, with a boto3 client to look inside."""

    endpoint_url: str
    bucket: str
    client: Any

    def env(self) -> dict[str, str]:
        """The environment variables that point the portal's ``exports`` storage at this bucket."""
        return {
            "EXPORTS_S3_BUCKET": self.bucket,
            "EXPORTS_S3_ENDPOINT_URL": self.endpoint_url,
            "EXPORTS_S3_REGION": S3_REGION,
            "EXPORTS_S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "EXPORTS_S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        }

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on a free local port; its endpoint URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "the moto server exited"
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the moto server did not start within 30 s"
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_exports_settings(s3_server) -> dict[str, Any]:
    """``STORAGES["exports"]`` as the settings module builds it from the ``EXPORTS_S3_*`` variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EXPORT")}
    store = ObjectStore(endpoint_url=s3_server, bucket="settings-probe", client=None)
    code = "import json; from portal import settings; print(json.dumps(settings.STORAGES['exports']))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, **store.env()},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


@pytest.fixture
def s3_store(s3_server) -> ObjectStore:
    """A new, empty bucket on the moto server (each test its own, so the order of tests does not matter)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )
    bucket = f"exports-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
    return ObjectStore(endpoint_url=s3_server, bucket=bucket, client=client)


@pytest.fixture
def s3_exports(settings, s3_store, s3_exports_settings, media_root) -> ObjectStore:
    """The ``exports`` storage in this test is the object store (``media_root`` keeps the folder empty to check)."""
    config = json.loads(json.dumps(s3_exports_settings))
    config["OPTIONS"]["bucket_name"] = s3_store.bucket
    settings.STORAGES = {**settings.STORAGES, "exports": config}
    return s3_store
