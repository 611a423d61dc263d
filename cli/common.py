"""Shared CLI plumbing: one console, and errors shown as messages with a hint, never a traceback."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from junto.errors import ConfigError, JuntoError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def report_error(exc: JuntoError) -> None:
    err_console.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False, soft_wrap=True)
    if isinstance(exc, JuntoError) and getattr(exc, "log_tail", ""):
        err_console.print("[dim]last log lines:[/]")
        err_console.print(exc.log_tail, markup=False, highlight=False)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn JuntoError into a message and its exit code (2 usage, 1 runtime); Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JuntoError as exc:
            report_error(exc)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[dim]interrupted[/]")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r} is not key=value", hint="e.g. --param temperature=0.7")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
