"""The job function plain RQ runs in benchmarks/throughput.py (imported as `rq_noop.noop`)."""


def noop() -> None:
    return None
