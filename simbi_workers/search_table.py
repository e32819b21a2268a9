"""The table of search hits that `simbi-workers search` and the demo print."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def hits_table(query: str, hits: list[dict[str, Any]]) -> Table:
    """Best match first: rank, record type and id, title and snippet (the matched words in
    [brackets]), as services/search.py returns them."""
    table = Table(title=Text(f"{len(hits)} hit(s) for {query!r}"))
    for column in ("rank", "type", "id", "title", "snippet"):
        table.add_column(column, justify="right" if column in ("rank", "id") else "left")
    for hit in hits:
        cells = (f"{hit['rank']:.3g}", hit["record_type"], str(hit["record_id"]), hit["title"])
        # Text cells: a title or snippet such as "[guitar]" is not rich markup.
        table.add_row(*(Text(cell) for cell in (*cells, hit["snippet"] or "")))
    return table
