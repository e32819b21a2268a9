"""What `simbi-workers demo` needs besides demo.py: its photos, the marketplace it builds
from them, the workload it enqueues, the supervisor subprocess and the report."""
