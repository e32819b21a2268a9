"""`simbi-workers check`: is this machine ready to run the workers?"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from simbi_workers import catalog as catalog_module
from simbi_workers.config import Settings
from simbi_workers.runtimes.manager import NODE_MAIN, ROOT

Result = tuple[str, bool, str]


def run_checks(settings: Settings) -> list[Result]:
    checks: list[tuple[str, Callable[[Settings], str]]] = [
        ("queues.yaml", _catalog),
        ("ruby", lambda s: _version([s.ruby_bin, "--version"])),
        ("node", lambda s: _version([s.node_bin, "--version"])),
        ("typescript build", _typescript_build),
        ("runtimes", _runtimes),
        ("redis", _redis),
        ("database", _database),
        ("mail", _mail),
        ("sms", _sms),
        ("push", _push),
    ]
    results = []
    for name, check in checks:
        try:
            results.append((name, True, check(settings)))
        except Exception as exc:
            results.append((name, False, str(exc)))
    return results


def _catalog(settings: Settings) -> str:
    catalog = catalog_module.load(settings.queues_file)
    return f"{len(catalog.queues)} queues, {len(catalog.workers)} workers ({catalog.path})"


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise RuntimeError(f"{argv[0]} is not on PATH (apt-get install ruby nodejs)")
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def _typescript_build(_settings: Settings) -> str:
    if not NODE_MAIN.exists():
        raise RuntimeError(f"{NODE_MAIN} is missing: run `make build`")
    sources = list((ROOT / "workers" / "typescript" / "src").rglob("*.ts"))
    newest = max((path.stat().st_mtime for path in sources), default=0)
    if newest > NODE_MAIN.stat().st_mtime:
        raise RuntimeError("the build is older than src/: run `make build`")
    return f"{NODE_MAIN.relative_to(ROOT)} is current"


def _runtimes(settings: Settings) -> str:
    """What `start` checks first: each runtime, children started, serves exactly the workers
    queues.yaml gives it."""
    from simbi_workers.runtimes.manager import Runtimes
    from simbi_workers.services import Services

    catalog = catalog_module.load(settings.queues_file)
    runtimes = Runtimes(settings, catalog, Services(settings, None))  # no host call is made
    runtimes.start()
    runtimes.stop()
    counts = ", ".join(
        f"{runtime} {len(catalog.workers_for(runtime))}" for runtime in ("python", "ruby", "node")
    )
    return f"each serves exactly its workers ({counts})"


def _redis(settings: Settings) -> str:
    from simbi_workers.redis_connection import connect, describe

    info = connect(settings).info("server")
    return f"Redis {info['redis_version']} at {describe(settings)}"


def _database(settings: Settings) -> str:
    from sqlalchemy import inspect

    from simbi_workers.services.db import Database

    if settings.database_url is None and not (settings.var_dir / "simbi.db").exists():
        raise RuntimeError("no database yet: run `simbi-workers db init`")
    database = Database(settings.database_url_or_default)
    from simbi_workers.store.schema import metadata

    tables = inspect(database.engine).get_table_names()
    where = database.engine.url.render_as_string(hide_password=True)
    missing = sorted(set(metadata.tables) - set(tables))
    if missing:
        raise RuntimeError(
            f"{where} lacks {len(missing)} of the app tables ({', '.join(missing[:3])}…): "
            "run `simbi-workers db init`"
        )
    return f"{where}: {len(tables)} tables"


# The providers: where mail, SMS and push notifications go, read from the settings alone
# (no connection is made). Each describe() keeps secrets out of what it returns or raises.


def _mail(settings: Settings) -> str:
    from simbi_workers.services import mail

    return _relative(mail.describe(settings))


def _sms(settings: Settings) -> str:
    from simbi_workers.services import sms

    return _relative(sms.describe(settings))


def _push(settings: Settings) -> str:
    from simbi_workers.services import push

    return _relative(push.describe(settings))


def _relative(line: str) -> str:
    # "outbox /home/…/simbi-workers/var/outbox/mail" reads better as "outbox var/outbox/mail".
    return line.replace(f"{ROOT}/", "")
