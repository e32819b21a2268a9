"""docker-compose.yml and Dockerfile, checked without Docker (it cannot run here): the file
parses, everything a build needs exists in the repository, and the commands are real."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

WORKERS_ENVIRONMENT = (
    "REDIS_URL",
    "DATABASE_URL",
    "SIMBI_S3_BUCKET",
    "SIMBI_S3_ENDPOINT_URL",
    "SMTP_URL",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def built_services(services: dict) -> dict[str, dict]:
    return {name: spec for name, spec in services.items() if "build" in spec}


def build_paths(spec: dict) -> tuple[Path, Path]:
    build = spec["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined, comments dropped."""
    text = path.read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        pairs.append((instruction.upper(), rest.strip()))
    return pairs


def copy_sources(arguments: str) -> list[str] | None:
    """The local sources of one COPY; None for COPY --from (another stage or image)."""
    flags, rest = [], arguments
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    if any(flag.startswith("--from=") for flag in flags):
        return None

    # Exec form ["src", "dest"] or shell form src dest; the last one is the destination.
    parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return parts[:-1]


def command_words(spec: dict) -> list[str]:
    command = spec.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def is_one_shot(spec: dict) -> bool:
    return str(spec.get("restart", "no")) == "no"


def test_the_compose_file_parses_and_names_every_backend(services):
    assert {"redis", "postgres", "minio", "mailpit", "workers"} <= set(services)


def test_every_service_has_an_image_or_a_build(services):
    missing = [
        name for name, spec in services.items() if "image" not in spec and "build" not in spec
    ]

    assert missing == []


def test_every_build_context_and_dockerfile_exists(services):
    assert built_services(services), "the workers service is built from the Dockerfile"

    for name, spec in built_services(services).items():
        context, dockerfile = build_paths(spec)
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"


def test_every_local_path_the_dockerfile_copies_exists(services):
    context, dockerfile = build_paths(services["workers"])
    copies = [args for op, args in dockerfile_instructions(dockerfile) if op in ("COPY", "ADD")]
    local = [src for args in copies for src in copy_sources(args) or []]

    # The ones the image cannot work without, whoever is still writing them.
    for needed in ("pyproject.toml", "simbi_workers/", "queues.yaml", "workers/ruby/"):
        assert needed in local
    missing = [src for src in local if not (context / src).exists()]
    assert missing == []


def test_the_runtime_image_is_python_311_slim_bookworm(services):
    _, dockerfile = build_paths(services["workers"])
    bases = [args.split()[0] for op, args in dockerfile_instructions(dockerfile) if op == "FROM"]

    assert bases[-1] == "python:3.11-slim-bookworm"


def test_redis_keeps_an_append_only_file_on_a_volume(services):
    redis = services["redis"]
    words = command_words(redis)

    assert redis["image"].startswith("redis:7")
    assert words[words.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_postgres_is_15(services):
    assert services["postgres"]["image"].startswith("postgres:15")


def test_the_workers_reach_every_backend_through_the_environment(services):
    environment = services["workers"]["environment"]

    for name in WORKERS_ENVIRONMENT:
        assert environment.get(name), f"workers: {name} is not set"
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["REDIS_URL"].startswith("redis://redis:")


def test_the_workers_publish_9191_and_check_health_there(services):
    workers = services["workers"]
    healthcheck = " ".join(workers["healthcheck"]["test"])

    assert "9191:9191" in workers["ports"]
    assert "127.0.0.1:9191/health" in healthcheck
    assert command_words(workers)[:4] == ["simbi-workers", "start", "--host", "0.0.0.0"]


def test_every_long_running_service_has_a_healthcheck(services):
    missing = [
        name
        for name, spec in services.items()
        if not is_one_shot(spec) and "healthcheck" not in spec
    ]

    assert missing == []


def test_depends_on_names_real_services(services):
    for name, spec in services.items():
        for dependency in spec.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_every_simbi_workers_command_is_a_real_cli_command(services):
    if not (ROOT / "simbi_workers" / "cli.py").exists():
        pytest.skip("simbi_workers/cli.py is not written yet")
    from simbi_workers.cli import main

    commands = [
        command_words(s) for s in services.values() if command_words(s)[:1] == ["simbi-workers"]
    ]
    assert ["simbi-workers", "start", "--host", "0.0.0.0"] in commands

    for words in commands:
        command = main
        args = words[1:]
        # Walk groups (`db init`) down to the command the words name.
        while args and hasattr(command, "commands") and args[0] in command.commands:
            command, args = command.commands[args[0]], args[1:]
        assert not hasattr(command, "commands"), f"{' '.join(words)} names a group, not a command"

        options = {opt for param in command.params for opt in param.opts}
        unknown = [word for word in args if word.startswith("--") and word not in options]
        assert unknown == [], f"{' '.join(words)}: options {unknown} do not exist"
