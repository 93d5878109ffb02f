"""One-line error reporting shared by every CLI command module."""

from __future__ import annotations

import functools
from typing import Any

import typer
from rich.console import Console

from recforge.errors import RecforgeError

err_console = Console(stderr=True)


def handle_errors(fn: Any) -> Any:
    """Print a :class:`RecforgeError` as one line on stderr and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecforgeError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
