"""Small helpers shared by tests: run SQL on either engine with ``?`` placeholders."""

from __future__ import annotations

from typing import Any

from orchestrator.db.connection import Database


def _sql(db: Database, text: str) -> str:
    return text.replace("?", "%s") if db.kind == "postgresql" else text


def fetch_all(db: Database, text: str, params: tuple = ()) -> list[tuple]:
    with db.connect() as conn:
        cur = conn.cursor()
        try:
            cur.execute(_sql(db, text), params)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()


def fetch_one(db: Database, text: str, params: tuple = ()) -> tuple | None:
    rows = fetch_all(db, text, params)
    return rows[0] if rows else None


def scalar(db: Database, text: str, params: tuple = ()) -> Any:
    row = fetch_one(db, text, params)
    return None if row is None else row[0]


def execute(db: Database, text: str, params: tuple = ()) -> None:
    with db.connect() as conn:
        cur = conn.cursor()
        try:
            cur.execute(_sql(db, text), params)
        finally:
            cur.close()
