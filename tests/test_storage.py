"""The storage service: the local directory and S3 through boto3 against a real moto_server."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from PIL import Image
from sqlalchemy import insert, select

from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.images import upload_image
from simbi_workers.runtimes.context import JobContext
from simbi_workers.services import Services
from simbi_workers.services.storage import LocalStorage, S3Storage, from_settings
from simbi_workers.store.schema import images, uploads
from tests.conftest import FIXTURES, free_port

BAD_KEYS = ["../escape", "a/../../b", "/etc/passwd", "a//b", "a/./b", "", "trailing/", "a\\b"]


@pytest.fixture(scope="session")
def moto_url():
    """A real moto S3 server for the session, on a free port of 127.0.0.1."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"moto_server did not answer on {url}")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_settings(settings, moto_url, monkeypatch):
    """Settings pointing at a fresh bucket; dummy credentials through boto3's env chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    bucket = f"simbi-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=bucket)
    settings.s3_bucket = bucket
    settings.s3_endpoint_url = moto_url
    return settings


@pytest.fixture(params=["local", "s3"])
def storage(request, settings):
    if request.param == "local":
        return from_settings(settings)
    return from_settings(request.getfixturevalue("s3_settings"))


def test_from_settings_picks_the_directory_without_a_bucket_and_s3_with_one(settings, s3_settings):
    assert isinstance(from_settings(settings), S3Storage)
    settings.s3_bucket = None
    local = from_settings(settings)
    assert isinstance(local, LocalStorage)
    assert local.root == (settings.var_dir / "storage").resolve()


def test_bytes_round_trip_and_delete_reports_whether_the_key_existed(storage):
    storage.put_bytes("images/1/a.jpg", b"\xff\xd8first", "image/jpeg")
    storage.put_bytes("images/1/a.jpg", b"\xff\xd8second", "image/jpeg")

    assert storage.get_bytes("images/1/a.jpg") == b"\xff\xd8second"
    assert storage.exists("images/1/a.jpg")
    assert storage.delete_key("images/1/a.jpg") is True
    assert storage.delete_key("images/1/a.jpg") is False
    assert not storage.exists("images/1/a.jpg")


def test_local_delete_leaves_no_empty_folders_but_keeps_full_ones(settings):
    storage = from_settings(settings)
    storage.put_bytes("avatars/7/v1/64.jpg", b"a", "image/jpeg")
    storage.put_bytes("avatars/7/v2/64.jpg", b"b", "image/jpeg")

    storage.delete_key("avatars/7/v1/64.jpg")

    assert not (storage.root / "avatars" / "7" / "v1").exists()
    assert (storage.root / "avatars" / "7" / "v2" / "64.jpg").exists()
    storage.delete_key("avatars/7/v2/64.jpg")
    assert not (storage.root / "avatars").exists()
    assert storage.root.exists()


def test_host_methods_carry_base64_through_services_call(storage, settings, redis_conn):
    services = Services(settings, redis_conn)
    services.__dict__["storage"] = storage  # the parametrized backend, not a new one
    payload = bytes(range(256))
    encoded = base64.b64encode(payload).decode()

    put = services.call("storage", "put", {"key": "k/bin", "data_base64": encoded})
    got = services.call("storage", "get", {"key": "k/bin"})
    deleted = services.call("storage", "delete", {"key": "k/bin"})

    assert put == {"key": "k/bin", "bytes": 256}
    assert base64.b64decode(got["data_base64"]) == payload
    assert deleted == {"deleted": True}
    assert storage.HOST_METHODS == ("put", "get", "delete")


def test_put_refuses_data_that_is_not_base64(storage):
    with pytest.raises(PermanentJobError, match="'k/x' is not base64"):
        storage.put("k/x", "not base64!!", "text/plain")


def test_get_of_a_missing_key_is_permanent_and_names_the_key(storage):
    with pytest.raises(PermanentJobError, match=r"storage key 'no/such\.jpg' does not exist"):
        storage.get_bytes("no/such.jpg")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_escape_the_root_are_refused(storage, key):
    for call in (
        lambda: storage.put_bytes(key, b"x", "text/plain"),
        lambda: storage.get_bytes(key),
        lambda: storage.delete_key(key),
    ):
        with pytest.raises(PermanentJobError, match=re.escape(f"storage key {key!r}")):
            call()


def test_local_writes_land_under_var_storage_with_no_temp_files_left(settings):
    storage = from_settings(settings)
    storage.put_bytes("deep/er/file.txt", b"hello", "text/plain")

    root = settings.var_dir / "storage"
    assert (root / "deep/er/file.txt").read_bytes() == b"hello"
    assert [p.name for p in (root / "deep/er").iterdir()] == ["file.txt"]
    assert not (settings.var_dir / "escape").exists()


def test_local_refuses_a_symlink_that_leads_outside_the_root(settings, tmp_path):
    storage = from_settings(settings)
    (settings.var_dir / "storage").mkdir()
    (settings.var_dir / "storage" / "link").symlink_to(tmp_path)

    with pytest.raises(PermanentJobError, match="outside the storage root"):
        storage.put_bytes("link/owned.txt", b"x", "text/plain")
    assert not (tmp_path / "owned.txt").exists()


def test_s3_stores_the_content_type(s3_settings):
    storage = from_settings(s3_settings)
    storage.put_bytes("t/a.png", b"\x89PNG", "image/png")

    head = storage.client.head_object(Bucket=s3_settings.s3_bucket, Key="t/a.png")
    assert head["ContentType"] == "image/png"


def test_s3_unreachable_endpoint_is_a_retryable_job_error(s3_settings):
    s3_settings.s3_endpoint_url = f"http://127.0.0.1:{free_port()}"
    storage = from_settings(s3_settings)

    with pytest.raises(JobError) as raised:
        storage.get_bytes("any/key")
    assert not isinstance(raised.value, PermanentJobError)
    assert "S3 get of 'any/key'" in str(raised.value)


def test_upload_image_worker_end_to_end_on_s3(s3_settings, redis_conn):
    services = Services(s3_settings, redis_conn)
    services.db.create_tables()
    ctx = JobContext("job-s3", "UploadImageWorker", "paperclip", 1, services)
    services.storage.put_bytes(
        "uploads/flower.jpg", (FIXTURES / "images/flower.jpg").read_bytes(), "image/jpeg"
    )
    with services.db.engine.begin() as conn:
        upload_id = conn.execute(insert(uploads).values(source="uploads/flower.jpg")).lastrowid
        image_id = conn.execute(insert(images).values(upload_id=upload_id)).lastrowid

    result = upload_image(ctx, image_id, upload_id)

    with services.db.engine.connect() as conn:
        row = conn.execute(select(images).where(images.c.id == image_id)).one()._mapping
    assert row["status"] == "ready"
    assert (row["width"], row["height"]) == (480, 360)
    assert row["variants"] == result["variants"]
    client = boto3.client("s3", endpoint_url=s3_settings.s3_endpoint_url)
    for name, variant in row["variants"].items():
        assert variant["key"] == f"images/{image_id}/{name}.jpg"
        body = client.get_object(Bucket=s3_settings.s3_bucket, Key=variant["key"])["Body"].read()
        assert len(body) == variant["bytes"]
        with Image.open(io.BytesIO(body)) as stored:
            assert stored.size == (variant["width"], variant["height"])
    assert row["variants"]["thumb"]["width"] == row["variants"]["thumb"]["height"] == 128
