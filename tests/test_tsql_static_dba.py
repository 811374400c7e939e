"""Static T-SQL checks from the DBA review of migrations 0014-0020 (no SQL Server runs here).

Each looks at the newest version of every SQL Server routine: what a database at head runs.
"""

import re

from tests.support import sqlchecks

TEMP_TABLE = re.compile(r"^\s*CREATE TABLE #\w+ \($")
CHARACTER_COLUMN = re.compile(r"^\s+(\w+)\s+(?:n?var)?n?char\((?:\d+|MAX)\)(.*)$", re.IGNORECASE)


def test_every_character_column_of_a_temp_table_takes_the_database_collation():
    """A #temp table's columns take tempdb's collation; where the FLP database's collation
    differs from the server's, a join of such a column to a PLSP table fails (error 468)."""
    missing = []
    for path in sqlchecks.latest_tsql_procedures():
        inside = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TEMP_TABLE.match(line):
                inside = True
            elif inside and line.strip() == ");":
                inside = False
            elif inside and (m := CHARACTER_COLUMN.match(line)) and "COLLATE DATABASE_DEFAULT" not in m[2]:
                missing.append(f"{path.name}:{number} {m[1]}")
    assert missing == []


def test_no_string_literal_outside_ascii():
    """sqlcmd -i reads a UTF-8 file without a BOM in the client's code page unless it gets
    -f 65001, so a literal such as N'Påskedag' would be stored garbled: build it with NCHAR()."""
    found = []
    for path in sqlchecks.latest_tsql_procedures():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("--", 1)[0]
            if any(ord(ch) > 127 for literal in re.findall(r"'[^']*'", code) for ch in literal):
                found.append(f"{path.name}:{number}")
    assert found == []
