"""`-o table|wide|json|yaml|name`, as kubectl prints them.

A command hands over a `Listing`: its rows, the columns of its table (some only in
`-o wide`), the record of each row for json/yaml (the resources' own field names), and
the kubectl-style name of each row (`gpujob.gpupool.io/resnet`) for `-o name`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, TypeVar

import typer
import yaml
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

R = TypeVar("R")

TABLE_FORMATS = ("table", "wide")


@dataclass(frozen=True)
class Column(Generic[R]):
    header: str
    cell: Callable[[R], RenderableType]
    _: KW_ONLY
    wide: bool = False  # only with -o wide
    right: bool = False
    fold: bool = False


@dataclass
class Listing(Generic[R]):
    title: str
    rows: Sequence[R]
    columns: Sequence[Column[R]]
    record: Callable[[R], dict[str, Any]]
    name: Callable[[R], str]
    empty: str
    # Added to the table (after it) and to the json/yaml document (as keys next to items).
    footer: RenderableType | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self, wide: bool) -> Table:
        table = Table(title=self.title, title_justify="left")
        shown = [column for column in self.columns if wide or not column.wide]
        for column in shown:
            table.add_column(
                column.header,
                justify="right" if column.right else "left",
                overflow="fold" if column.fold else "ellipsis",
            )
        for row in self.rows:
            table.add_row(*(column.cell(row) for column in shown))
        return table

    def document(self) -> dict[str, Any]:
        return {"items": [self.record(row) for row in self.rows], **self.summary}


def print_listing(listing: Listing[Any], output: str) -> None:
    if output in TABLE_FORMATS:
        console = Console()
        if not listing.rows:
            Console(stderr=True).print(listing.empty, highlight=False)
            if listing.footer is not None:
                console.print(listing.footer)
            return
        parts: list[RenderableType] = [listing.table(output == "wide")]
        if listing.footer is not None:
            parts.append(listing.footer)
        console.print(Group(*parts))
        return
    if output == "name":
        names = dict.fromkeys(listing.name(row) for row in listing.rows)
        for name in names:
            typer.echo(name)
        return
    print_document(listing.document(), output)


def print_document(document: Any, output: str) -> None:
    """json or yaml on stdout, nothing else (for pipes)."""
    if output == "json":
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output == "yaml":
        typer.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)
    else:
        raise ValueError(f"not a document format: {output}")


def dash(value: object) -> str:
    """A table cell: '-' for nothing."""
    return "-" if value in (None, "", 0) else str(value)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def bar(value: float, width: int = 10) -> Text:
    filled = max(0, min(width, round(value / 100 * width)))
    style = "green" if value >= 50 else "yellow" if value >= 10 else "red"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim")
