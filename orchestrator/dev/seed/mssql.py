"""SQL Server side of the seed: one transaction, ``executemany`` in batches.

Not run here (no SQL Server engine on these machines): written by reading the
driver and T-SQL documentation. It uses only the DBAPI, so it works with
pyodbc (the default driver, with ``fast_executemany``) and mssql-python.
mssql-python's ``cursor.bulkcopy()`` would be faster, but it talks to the
server outside the cursor's pipeline and its documentation does not promise
that it joins the open transaction; the seed must be all or nothing.
Foreign keys and indexes stay in place: SQL Server checks them per batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.dev.seed.producer import ChunkMaker
from orchestrator.dev.seed.rows import Rows, python_rows
from orchestrator.dev.seed.tables import Table

BATCH_ROWS = 5_000  # rows per executemany call
STAGE = "#SeedStage"


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[MssqlLoader]:
    conn.autocommit = False
    cur = conn.cursor()
    try:
        if hasattr(cur, "fast_executemany"):
            cur.fast_executemany = True  # pyodbc: send parameter arrays, not one row per round trip
        cur.execute("SET XACT_ABORT ON;")
        yield MssqlLoader(cur)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()
        conn.autocommit = True


class MssqlLoader:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def _scalar(self, sql: str) -> Any:
        self.cur.execute(sql)
        return self.cur.fetchone()[0]

    def patients_present(self) -> int:
        # TABLOCKX + HOLDLOCK until commit: a second seed waits here, then refuses.
        return self._scalar("SELECT COUNT_BIG(*) FROM PLSP.Patient WITH (TABLOCKX, HOLDLOCK);")

    def next_ids(self, tables: Iterable[Table]) -> dict[str, int]:
        return {
            t.name: self._scalar(f"SELECT ISNULL(MAX({t.id_column}), 0) + 1 FROM {t.name};")
            for t in tables
            if t.id_column
        }

    def before_load(self, tables: Iterable[Table]) -> None:
        pass

    def load(self, tables: list[Table], make_chunks: ChunkMaker) -> dict[str, int]:
        """Insert every table in order, generating in-process; return the rows written per table."""
        return {table.name: self._write(table, make_chunks(table)) for table in tables}

    def _write(self, table: Table, chunks: Iterator[Rows]) -> int:
        rows = 0
        columns: list[str] | None = None
        target = STAGE if table.keys else table.name
        for chunk in chunks:
            if columns is None:
                columns = list(chunk.columns)
                if table.keys:
                    # Reference rows may be there already (agreed codes): add only the missing ones.
                    self.cur.execute(f"SELECT TOP (0) {', '.join(columns)} INTO {STAGE} FROM {table.name};")
                if table.id_column:
                    # With an explicit value above the current one, SQL Server moves the identity on.
                    self.cur.execute(f"SET IDENTITY_INSERT {table.name} ON;")
            insert = f"INSERT INTO {target} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))});"
            values = python_rows(chunk)
            for start in range(0, len(values), BATCH_ROWS):
                self.cur.executemany(insert, values[start : start + BATCH_ROWS])
            rows += chunk.count
        if columns is None:
            return 0
        if table.id_column:
            self.cur.execute(f"SET IDENTITY_INSERT {table.name} OFF;")
        if table.keys:
            listed = ", ".join(columns)
            match = " AND ".join(f"t.{k} = s.{k}" for k in table.keys)
            self.cur.execute(
                f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM {STAGE} AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} AS t WHERE {match});"
            )
            rows = self.cur.rowcount
            self.cur.execute(f"DROP TABLE {STAGE};")
        return rows

    def after_load(self, tables: Iterable[Table]) -> None:
        for t in tables:
            self.cur.execute(f"UPDATE STATISTICS {t.name};")
