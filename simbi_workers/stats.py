"""The cluster-wide numbers, read from Redis in one round trip, so every host agrees."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis

from simbi_workers import keys
from simbi_workers.catalog import Catalog


def collect(connection: redis.Redis, catalog: Catalog) -> dict[str, Any]:
    queues = catalog.queue_names()
    workers = sorted(catalog.workers)
    process_ids = [pid.decode() for pid in connection.smembers(keys.PROCESSES)]

    pipe = connection.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(keys.queue(queue))
        pipe.lindex(keys.queue(queue), 0)
        pipe.zcard(keys.scheduled(queue))
        pipe.zcard(keys.started(queue))
        pipe.zcard(keys.failed(queue))
    for worker in workers:
        pipe.hgetall(keys.worker_stats(worker))
    for process_id in process_ids:
        pipe.hgetall(keys.process(process_id))
    replies = pipe.execute()

    queue_stats = {}
    for index, queue in enumerate(queues):
        size, oldest, scheduled, running, failed = replies[index * 5 : index * 5 + 5]
        queue_stats[queue] = {
            "size": size,
            "latency_seconds": _latency(connection, oldest),
            "scheduled": scheduled,
            "running": running,
            "failed": failed,
        }
    offset = len(queues) * 5
    worker_stats = {
        worker: _worker(catalog, worker, replies[offset + index])
        for index, worker in enumerate(workers)
    }
    offset += len(workers)
    processes = _processes(process_ids, replies[offset:])
    return {
        "queues": queue_stats,
        "workers": worker_stats,
        "processes": processes,
        "totals": _totals(queue_stats, worker_stats),
    }


def _latency(connection: redis.Redis, oldest: bytes | None) -> float:
    if oldest is None:
        return 0.0
    enqueued = connection.hget(keys.job(oldest.decode()), "enqueued_at")
    if not enqueued:
        return 0.0
    when = datetime.fromisoformat(enqueued.decode().replace("Z", "+00:00"))
    return round(max(0.0, time.time() - when.timestamp()), 3)


def _worker(catalog: Catalog, worker: str, raw: dict[bytes, bytes]) -> dict[str, Any]:
    spec = catalog.workers[worker]
    processed = int(raw.get(b"processed", 0))
    failed = int(raw.get(b"failed", 0))
    runtime_ms = float(raw.get(b"runtime_ms", 0))
    runs = processed + failed
    return {
        "runtime": spec.runtime,
        "queue": spec.queue,
        "processed": processed,
        "failed": failed,
        "dead": int(raw.get(b"dead", 0)),
        "skipped": int(raw.get(b"skipped", 0)),
        "mean_ms": round(runtime_ms / runs, 2) if runs else None,
    }


def _processes(process_ids: list[str], raws: list[dict]) -> dict[str, list[dict[str, Any]]]:
    by_host: dict[str, list[dict[str, Any]]] = {}
    now = time.time()
    for process_id, raw in zip(process_ids, raws, strict=True):
        if not raw:
            continue  # expired: the process died without deregistering
        entry = {key.decode(): value.decode("utf-8", "replace") for key, value in raw.items()}
        by_host.setdefault(entry.get("host", "unknown"), []).append(
            {
                "id": process_id,
                "pid": _number(entry.get("pid"), int),
                "job": entry.get("job") or None,
                "children": entry.get("children", ""),
                "heartbeat_age_seconds": round(now - _number(entry.get("heartbeat"), float), 1),
            }
        )
    return by_host


def _totals(queues: dict[str, dict], workers: dict[str, dict]) -> dict[str, int]:
    return {
        "enqueued": sum(queue["size"] for queue in queues.values()),
        "scheduled": sum(queue["scheduled"] for queue in queues.values()),
        "running": sum(queue["running"] for queue in queues.values()),
        "dead": sum(queue["failed"] for queue in queues.values()),
        "processed": sum(worker["processed"] for worker in workers.values()),
        "failed": sum(worker["failed"] for worker in workers.values()),
    }


def _number(text: str | None, kind):
    # A hash written in part (an old version, a hand edit) must not break /stats.
    try:
        return kind(text)
    except (TypeError, ValueError):
        return kind(0)
