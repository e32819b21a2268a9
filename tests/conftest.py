"""Shared fixtures: a real redis-server per test session, a clean database per test."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from simbi_workers.config import Settings
from tests.harness import free_port  # tests import it from here too

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on its own port and data directory, for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: run `make test`, which installs it")
    port = free_port()
    data_dir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "16",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    return redis_server


@pytest.fixture
def redis_conn(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def settings(tmp_path, redis_url, monkeypatch) -> Settings:
    """Settings for one test: its own var/ directory, SQLite database and the test Redis."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SIMBI_VAR_DIR", str(tmp_path / "var"))
    (tmp_path / "var").mkdir(exist_ok=True)
    return Settings()


@pytest.fixture(scope="session")
def test_catalog_path(tmp_path_factory) -> Path:
    from tests.harness import write_test_catalog

    return write_test_catalog(tmp_path_factory.mktemp("catalog") / "queues.yaml")


@pytest.fixture
def worker_env(test_catalog_path, redis_url, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment of a worker process that also serves the test workers; applied to
    this process too, so in-process WorkerProcess and Client objects see it."""
    from tests.harness import test_env

    var_dir = tmp_path / "var"
    var_dir.mkdir(exist_ok=True)
    env = test_env(test_catalog_path, redis_url, var_dir)
    for name in (
        "REDIS_URL",
        "SIMBI_VAR_DIR",
        "SIMBI_QUEUES_FILE",
        "SIMBI_PYTHON_EXTRA_WORKERS",
        "SIMBI_RUBY_EXTRA_WORKERS",
        "SIMBI_NODE_EXTRA_WORKERS",
    ):
        monkeypatch.setenv(name, env[name])
    return env


POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster. Locally it skips when PostgreSQL is not installed;
    in CI (CI=true) that is a failure, because .ci/run installs it."""
    import os
    import pwd

    if not (POSTGRES_BIN / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is not installed, but .ci/run should have installed it")
        pytest.skip("PostgreSQL 15 is not installed (apt-get install postgresql)")

    import tempfile

    # Not under pytest's tmp dir: that is private to root, and postgres must reach it.
    data = Path(tempfile.mkdtemp(prefix="simbi-pg-"))
    run_as = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        run_as = ["runuser", "-u", "postgres", "--"]
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
    port = free_port()
    subprocess.run(
        [
            *run_as,
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(data / "db"),
            "--auth=trust",
            "--no-sync",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-w",
            "start",
            "-l",
            str(data / "log"),
        ],
        check=True,
        capture_output=True,
    )
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*run_as, str(POSTGRES_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
        capture_output=True,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each db test runs on SQLite and on a real PostgreSQL (a fresh schema each time)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url = request.getfixturevalue("postgres_server")
    from sqlalchemy import create_engine

    from simbi_workers.store.schema import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def fresh_settings_cache():
    """settings() and the default catalogue are read once per process; each test sets its
    own environment, so forget what an earlier test read."""
    from simbi_workers import catalog, config

    config.settings.cache_clear()
    catalog.default.cache_clear()
    yield
    config.settings.cache_clear()
    catalog.default.cache_clear()


@pytest.fixture
def client(worker_env, redis_conn):
    from simbi_workers.client import Client

    return Client(connection=redis_conn)


@pytest.fixture
def worker(worker_env, redis_conn):
    """A worker process object (process id "test-process") with its Ruby and Node children
    running, to drive fetch and process one job at a time."""
    from simbi_workers import catalog
    from simbi_workers.worker import WorkerProcess

    settings = Settings()
    loaded = catalog.load(settings.queues_file)
    process = WorkerProcess(settings, loaded, redis_conn, "test-process", loaded.queue_names())
    process.runtimes.start()
    yield process
    process.runtimes.stop()
