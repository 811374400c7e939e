"""Rows of one table as columns, and their two encodings: PostgreSQL COPY text
and Python tuples for a DBAPI ``executemany``.

A column is a numpy array (numbers, booleans, datetime64 with NaT for NULL,
StringDType text), a ``Nullable`` (values plus a NULL mask), or one plain
value for every row (``None`` is NULL).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from orchestrator.dev.seed.text import join, text, where

COPY_NULL = r"\N"


class Nullable(NamedTuple):
    values: np.ndarray
    null: np.ndarray  # bool, True where the value is NULL


@dataclass
class Rows:
    columns: dict[str, Any]  # column name -> column, in COPY / INSERT order
    count: int


def _copy_column(column: Any) -> np.ndarray | str:
    if isinstance(column, Nullable):
        out = text(column.values)
        out[np.flatnonzero(column.null)] = COPY_NULL  # far cheaper than np.where on text arrays
        return out
    if not isinstance(column, np.ndarray):
        if column is None:
            return COPY_NULL
        if isinstance(column, bool):
            return "t" if column else "f"
        return str(column)
    if column.dtype == bool:
        return where(column, "t", "f")
    out = text(column)
    if np.issubdtype(column.dtype, np.datetime64):
        out[np.flatnonzero(np.isnat(column))] = COPY_NULL
    return out


def copy_text(rows: Rows) -> str:
    """The rows in PostgreSQL COPY text format (tab-separated, ``\\N`` for NULL).

    Text columns are not escaped: every text the seed writes is built from
    digits and from the constants in codes.py, which hold no tab, newline
    or backslash (checked there at import).
    """
    if rows.count == 0:
        return ""
    pieces: list[np.ndarray | str] = []
    for column in rows.columns.values():
        pieces += [_copy_column(column), "\t"]
    pieces[-1] = "\n"
    merged: list[np.ndarray | str] = []  # runs of constant columns become one literal
    for piece in pieces:
        if merged and isinstance(piece, str) and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    if all(isinstance(p, str) for p in merged):
        return "".join(merged) * rows.count
    return "".join(join(*merged).tolist())


def python_rows(rows: Rows) -> list[tuple]:
    """The rows as tuples of Python values (None for NULL) for ``executemany``."""
    columns: list[Any] = []
    for column in rows.columns.values():
        if isinstance(column, Nullable):
            values = column.values.tolist()
            columns.append([None if n else v for v, n in zip(values, column.null.tolist(), strict=True)])
        elif isinstance(column, np.ndarray):
            columns.append(column.tolist())  # datetime64[s] -> datetime, [D] -> date, NaT -> None
        else:
            value = column.item() if isinstance(column, np.generic) else column  # numpy scalar -> Python
            columns.append(itertools.repeat(value, rows.count))
    return list(zip(*columns, strict=False))  # constant columns are endless repeats
