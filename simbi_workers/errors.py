"""The package's exceptions: one root, with branches for configuration, job input,
job failures and infrastructure. Messages name the file, field or value and what to do."""


class SimbiError(Exception):
    """Root of every error simbi-workers raises on purpose."""


class ConfigError(SimbiError):
    """queues.yaml or the environment is wrong; the process cannot start as configured."""


class JobInputError(SimbiError):
    """An enqueue was refused: unknown worker, wrong argument count, non-JSON argument."""


class JobError(SimbiError):
    """A job failed while running. `retryable` says whether the retry policy applies."""

    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PermanentJobError(JobError):
    """A failure that no retry can fix (bad input, missing record): straight to the dead set."""

    retryable = False


class JobTimeout(JobError):
    """The job ran past its worker's timeout and was stopped."""


class InfrastructureError(SimbiError):
    """Redis, a child process or an outside service is not working as it must."""


class ChildError(InfrastructureError):
    """A Ruby or Node child failed to start, crashed, hung or broke the protocol."""
