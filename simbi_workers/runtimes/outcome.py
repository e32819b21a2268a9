"""What running one job produced, whatever the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Failure:
    error_class: str
    message: str
    retryable: bool = True
    retry_after_seconds: float | None = None
    backtrace: list[str] = field(default_factory=list)
    # The job never ran (its runtime could not start): try again later, not an attempt.
    uncounted: bool = False

    def text(self) -> str:
        lines = [f"{self.error_class}: {self.message}", *self.backtrace]
        return "\n".join(lines)


@dataclass
class Outcome:
    value: Any = None
    skipped: str | None = None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None
