"""queues.yaml → validated queue and worker specs.

Every mistake is reported as one ConfigError naming the file, the worker (or queue) and
the key, so an operator can fix it without reading code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simbi_workers import wire
from simbi_workers.errors import ConfigError

RUNTIMES = ("python", "ruby", "node")
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_QUEUES_FILE = Path(__file__).resolve().parent.parent / "queues.yaml"


class _QueueModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    priority: int = Field(ge=0, le=100)


class _WorkerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    runtime: Literal["python", "ruby", "node"]
    args: list[str]
    queue: str = "default"
    retry: int = Field(default=5, ge=0, le=25)
    timeout: int = Field(default=60, ge=1, le=86_400)
    concurrency: int | None = Field(default=None, ge=1)
    unique: int | None = Field(default=None, ge=1)
    cron: str | None = None
    cron_args: list[Any] | None = None
    secret_args: list[str] = []


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    queues: dict[str, _QueueModel]
    workers: dict[str, _WorkerModel]


@dataclass(frozen=True)
class QueueSpec:
    name: str
    priority: int


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    runtime: str
    args: tuple[str, ...]
    queue: str
    retry: int
    timeout_seconds: int
    concurrency: int | None
    unique_seconds: int | None
    cron: str | None
    cron_args: tuple[Any, ...] = ()
    # Arguments (an access token, say) that job listings, logs and errors never show.
    secret_args: tuple[str, ...] = ()

    @property
    def arity(self) -> int:
        return len(self.args)

    @property
    def secret_positions(self) -> tuple[int, ...]:
        return tuple(self.args.index(name) for name in self.secret_args)

    def shown_args(self, args: list[Any]) -> list[Any]:
        """`args` as listings may show them: each secret one replaced by wire.REDACTED."""
        return wire.redacted(args, self.secret_positions)


@dataclass(frozen=True)
class Catalog:
    path: Path
    queues: tuple[QueueSpec, ...]  # highest priority first
    workers: dict[str, WorkerSpec]

    def worker(self, name: str) -> WorkerSpec:
        try:
            return self.workers[name]
        except KeyError:
            raise ConfigError(
                f"unknown worker {name!r}: {self.path} declares no such worker"
            ) from None

    def queue_names(self) -> list[str]:
        return [queue.name for queue in self.queues]

    def workers_for(self, runtime: str) -> list[str]:
        return sorted(name for name, spec in self.workers.items() if spec.runtime == runtime)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping key given twice instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"{loader.name}:{line}: {key!r} is listed twice")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(path: str | Path = DEFAULT_QUEUES_FILE) -> Catalog:
    path = Path(path)
    raw = _read_yaml(path)
    model = _validate(path, raw)

    for name in model.queues:
        if not QUEUE_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: queue {name!r}: use letters, digits, '_' and '-' only (no commas, "
                "colons or spaces: queue names are joined into lists and Redis keys)"
            )
    queues = sorted(
        (QueueSpec(name, spec.priority) for name, spec in model.queues.items()),
        key=lambda queue: -queue.priority,
    )
    workers = {
        name: _worker_spec(path, name, spec, model.queues) for name, spec in model.workers.items()
    }
    return Catalog(path=path, queues=tuple(queues), workers=workers)


@cache
def default() -> Catalog:
    from simbi_workers.config import settings

    return load(settings().queues_file)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the queues file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _validate(path: Path, raw: Any) -> _FileModel:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'queues' and 'workers'")
    try:
        return _FileModel.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _describe_location(error["loc"])
        value = error.get("input")
        raise ConfigError(f"{path}: {where}: {error['msg'].lower()} (got {value!r})") from None


def _describe_location(loc: tuple) -> str:
    parts = [str(part) for part in loc if not str(part).startswith("function-")]
    if len(parts) >= 2 and parts[0] in ("workers", "queues"):
        kind = "worker" if parts[0] == "workers" else "queue"
        rest = ".".join(parts[2:])
        return f"{kind} {parts[1]}" + (f", key {rest!r}" if rest else "")
    return "key " + ".".join(parts)


def _worker_spec(path: Path, name: str, spec: _WorkerModel, queues: dict) -> WorkerSpec:
    if spec.queue not in queues:
        known = ", ".join(sorted(queues))
        raise ConfigError(
            f"{path}: worker {name}, key 'queue': unknown queue {spec.queue!r} (known: {known})"
        )
    if spec.cron is not None and (len(spec.cron.split()) != 5 or not croniter.is_valid(spec.cron)):
        raise ConfigError(
            f"{path}: worker {name}, key 'cron': {spec.cron!r} is not a five-field cron expression"
        )
    _check_cron_args(path, name, spec)
    if len(set(spec.args)) != len(spec.args):
        raise ConfigError(f"{path}: worker {name}, key 'args': an argument name is repeated")
    _check_secret_args(path, name, spec)
    return WorkerSpec(
        name=name,
        runtime=spec.runtime,
        args=tuple(spec.args),
        queue=spec.queue,
        retry=spec.retry,
        timeout_seconds=spec.timeout,
        concurrency=spec.concurrency,
        unique_seconds=spec.unique,
        cron=spec.cron,
        cron_args=tuple(spec.cron_args or ()),
        secret_args=tuple(spec.secret_args),
    )


def _check_secret_args(path: Path, name: str, spec: _WorkerModel) -> None:
    unknown = [arg for arg in spec.secret_args if arg not in spec.args]
    if unknown:
        known = ", ".join(spec.args) or "none"
        raise ConfigError(
            f"{path}: worker {name}, key 'secret_args': {unknown[0]!r} is not one of its "
            f"args ({known})"
        )


def _check_cron_args(path: Path, name: str, spec: _WorkerModel) -> None:
    where = f"{path}: worker {name}, key 'cron_args'"
    given = spec.cron_args
    if spec.cron is None:
        if given is not None:
            raise ConfigError(f"{where}: given without 'cron'")
        return
    if len(given or []) != len(spec.args):
        wanted = ", ".join(spec.args) or "no arguments"
        raise ConfigError(
            f"{where}: each cron run needs {len(spec.args)} argument(s) ({wanted}), "
            f"got {len(given or [])}"
        )
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {given!r} is not plain JSON (quote dates)") from None
