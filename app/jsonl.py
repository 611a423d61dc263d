"""Reading JSONL that people and models wrote: one JSON object a line, every error naming the file and line.

Lines end at ``\\n`` only — never :meth:`str.splitlines`, which also breaks at U+2028 and other separators
that may sit inside a JSON string. ``.gz`` files are read transparently. Blank lines are skipped.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from junto.errors import ConfigError

HINT = "one JSON object a line (JSONL)"


def parse_lines(lines: Iterable[str], source: str, *, required: tuple[str, ...] = (), hint: str = HINT
                ) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; a :class:`ConfigError` naming ``source`` and the line
    for text that is not JSON, a value that is not an object, or an object missing a ``required`` field."""
    rows = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{source}:{no}: not valid JSON ({getattr(exc, 'msg', exc)})", hint=hint) from None
        if not isinstance(row, dict):
            raise ConfigError(f"{source}:{no}: each line must be a JSON object", hint=hint)
        missing = [k for k in required if k not in row]
        if missing:
            raise ConfigError(f"{source}:{no}: missing field(s) {', '.join(missing)}",
                              hint=f"each line needs: {', '.join(required)}")
        rows.append((no, row))
    return rows


def read_text(path: str | Path) -> str:
    """The file's text (``.gz`` decompressed); a :class:`ConfigError` when it is missing or unreadable."""
    p = Path(path).expanduser()
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                return fh.read()
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"cannot read {p}: no such file", hint="check the path") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ConfigError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None


def read_jsonl(path: str | Path, *, required: tuple[str, ...] = (), hint: str = HINT, allow_empty: bool = False
               ) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSONL file with their line numbers (see :func:`parse_lines`); an empty file is a
    :class:`ConfigError` unless ``allow_empty``."""
    rows = parse_lines(read_text(path).split("\n"), str(path), required=required, hint=hint)
    if not rows and not allow_empty:
        raise ConfigError(f"{path}: no rows", hint=hint)
    return rows
