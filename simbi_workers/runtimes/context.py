"""What a Python worker function receives besides its arguments."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simbi_workers.services import Services


@dataclass
class JobContext:
    job_id: str
    worker: str
    queue: str
    attempt: int
    services: Services
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("simbi_workers.job"))
    skipped: str | None = None

    def skip(self, reason: str) -> None:
        """Mark the job as done without effect; the reason is logged at info level."""
        self.skipped = reason
