"""/health, /stats and /metrics, served from a thread of the supervisor."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from simbi_workers import stats
from simbi_workers.catalog import Catalog
from simbi_workers.errors import ConfigError

log = logging.getLogger("simbi_workers.http")


class StatsCollector:
    """Prometheus metrics from the cluster-wide numbers in Redis."""

    def __init__(self, connection: redis.Redis, catalog: Catalog):
        self.connection = connection
        self.catalog = catalog

    def collect(self):
        numbers = stats.collect(self.connection, self.catalog)
        labels = ["worker", "queue", "runtime"]
        processed = CounterMetricFamily("simbi_jobs_processed", "Jobs done", labels=labels)
        failed = CounterMetricFamily("simbi_jobs_failed", "Failed attempts", labels=labels)
        dead = CounterMetricFamily("simbi_jobs_dead", "Jobs sent to the dead set", labels=labels)
        skipped = CounterMetricFamily(
            "simbi_jobs_skipped", "Jobs done with nothing to do", labels=labels
        )
        for name, worker in numbers["workers"].items():
            values = [name, worker["queue"], worker["runtime"]]
            processed.add_metric(values, worker["processed"])
            failed.add_metric(values, worker["failed"])
            dead.add_metric(values, worker["dead"])
            skipped.add_metric(values, worker["skipped"])
        yield from (processed, failed, dead, skipped)
        yield from _queue_gauges(numbers["queues"])
        alive = GaugeMetricFamily("simbi_processes", "Live worker processes", labels=["host"])
        for host, processes in numbers["processes"].items():
            alive.add_metric([host], len(processes))
        yield alive


def _queue_gauges(queues: dict[str, dict[str, Any]]):
    for field, help_text in (
        ("size", "Jobs waiting"),
        ("latency_seconds", "Age of the oldest waiting job"),
        ("scheduled", "Jobs scheduled or waiting to retry"),
        ("running", "Jobs running"),
        ("failed", "Jobs in the dead set"),
    ):
        gauge = GaugeMetricFamily(f"simbi_queue_{field}", help_text, labels=["queue"])
        for name, queue in queues.items():
            gauge.add_metric([name], queue[field])
        yield gauge


class MonitorServer:
    def __init__(
        self,
        host: str,
        port: int,
        connection: redis.Redis,
        catalog: Catalog,
        health: Callable[[], dict[str, Any]],
    ):
        self.connection = connection
        self.catalog = catalog
        self.health = health
        self.registry = CollectorRegistry()
        self.registry.register(StatsCollector(connection, catalog))
        try:
            self.server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise ConfigError(
                f"cannot serve HTTP on {host}:{port}: {exc.strerror}; pass --port (0 picks a "
                "free one) or stop what uses it"
            ) from None
        self.server.daemon_threads = True

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="http").start()
        log.info("HTTP on http://%s:%d (/health /stats /metrics)", *self.address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                route = self.path.split("?", 1)[0]
                try:
                    if route == "/health":
                        body = monitor.health()
                        self._json(200 if body["ok"] else 503, body)
                    elif route == "/stats":
                        self._json(200, stats.collect(monitor.connection, monitor.catalog))
                    elif route == "/metrics":
                        self._send(200, CONTENT_TYPE_LATEST, generate_latest(monitor.registry))
                    else:
                        self._json(
                            404, {"error": f"no route {route}: try /health, /stats, /metrics"}
                        )
                except redis.RedisError as exc:
                    self._json(503, {"ok": False, "error": f"Redis: {exc}"})
                except Exception as exc:
                    log.exception("GET %s failed", route)
                    self._json(500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})

            def do_HEAD(self):
                # Load balancers probe with HEAD: the status of GET, without the body.
                self.head_only = True
                self.do_GET()

            def _read_only(self):
                # The endpoints only read: any other method is 405 with what is allowed.
                self.send_response(405)
                self.send_header("Allow", "GET, HEAD")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _read_only

            def _json(self, status: int, body: dict) -> None:
                self._send(status, "application/json", json.dumps(body, indent=1).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not getattr(self, "head_only", False):
                    self.wfile.write(data)

            def log_message(self, format, *args):
                log.debug("%s " + format, self.client_address[0], *args)

        return Handler
