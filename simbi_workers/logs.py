"""Logging: one line per event, text for people or JSON for log pipelines."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

from simbi_workers.config import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-7s [{os.getpid()}] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Uncaught errors go through the same handler, so JSON logs stay one object per line.
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(
        args.exc_type, args.exc_value, args.exc_traceback
    )
    # Libraries' request logs would print a line per Redis or HTTP call.
    for noisy in ("urllib3", "botocore", "boto3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _log_uncaught(exc_type, exc_value, traceback) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        return
    logging.getLogger("simbi_workers").critical(
        "uncaught %s", exc_type.__name__, exc_info=(exc_type, exc_value, traceback)
    )
