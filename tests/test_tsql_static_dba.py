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


# ------------------------------------------------------------------------------
# Migration 0025: the job lock is released when ending a run fails
# ------------------------------------------------------------------------------

TRY_CATCH = re.compile(r"\b(BEGIN|END)\s+(TRY|CATCH)\b", re.IGNORECASE)


def _blocks(code: str) -> list[tuple[str, int, int, int]]:
    """(TRY or CATCH, depth, start, end) of every TRY and CATCH block, outermost depth 0."""
    found, stack = [], []
    for m in TRY_CATCH.finditer(code):
        kind = m[2].upper()
        if m[1].upper() == "BEGIN":
            stack.append((kind, m.end()))
        else:
            opened, start = stack.pop()
            assert opened == kind, f"END {kind} closes BEGIN {opened}"
            found.append((kind, len(stack), start, m.start()))
    assert stack == [], "a TRY or CATCH is not closed"
    return found


def _head_code(name: str) -> str:
    (path,) = [p for p in sqlchecks.latest_tsql_procedures() if p.name.startswith(f"{name}.v")]
    return sqlchecks._blank_comments_and_strings(path.read_text(encoding="utf-8"))


def _inside(blocks, kind: str, offset: int, depth: int | None = None) -> bool:
    return any(k == kind and s <= offset < e and (depth is None or d == depth) for k, d, s, e in blocks)


def test_ending_a_run_releases_the_job_lock_in_its_catch_block_too():
    """job_run_finish / job_run_fail: every UPDATE of Ops.JobRun sits in a TRY, and the CATCH of
    the outer one releases the Session applock before THROW, so a failed UPDATE (1222, 1205)
    neither keeps the lock for the session's life nor hides the error."""
    for name in ("job_run_finish", "job_run_fail"):
        code = _head_code(name)
        blocks = _blocks(code)
        updates = [m.start() for m in re.finditer(r"\bUPDATE\s+Ops\.JobRun\b", code, re.IGNORECASE)]
        assert updates and all(_inside(blocks, "TRY", u) for u in updates), name
        (outer_catch,) = [(s, e) for k, d, s, e in blocks if k == "CATCH" and d == 0]
        body = code[outer_catch[0] : outer_catch[1]]
        release, throw = body.rfind("sp_releaseapplock"), body.rfind("THROW;")
        assert 0 <= release < throw, f"{name}: no lock release before THROW in the CATCH block"
        # The release and the THROW are not inside the nested TRY/CATCH (which may swallow).
        assert not _inside(blocks, "TRY", outer_catch[0] + release, depth=1), name
        assert not _inside(blocks, "CATCH", outer_catch[0] + throw, depth=1), name
        # And the lock is released on the way out when nothing failed.
        assert code.rfind("sp_releaseapplock") > outer_catch[1], name


def test_the_engine_ends_a_failed_run_in_a_try_of_its_own_and_throws_the_runs_error():
    """run_batched: the CATCH block's Job.job_run_finish sits in a nested TRY, and the THROW that
    ends the CATCH block is outside it: the caller gets the error that failed the run."""
    code = _head_code("run_batched")
    blocks = _blocks(code)
    (outer_catch,) = [(s, e) for k, d, s, e in blocks if k == "CATCH" and d == 0]
    finishes = [
        m.start()
        for m in re.finditer(r"\bEXEC\s+Job\.job_run_finish\b", code)
        if outer_catch[0] <= m.start() < outer_catch[1]
    ]
    assert finishes and all(_inside(blocks, "TRY", f, depth=1) for f in finishes)
    throw = code.rfind("THROW;", outer_catch[0], outer_catch[1])
    assert throw > max(finishes) and not _inside(blocks, "CATCH", throw, depth=1)


def test_fallback_due_takes_daily_at_one_wider_and_checks_its_length():
    """A varchar(5) @DailyAt cut '04:305' to '04:30' before any check; LIKE ignores trailing blanks
    and, under a dictionary collation, [0-9] can match more than the ASCII digits."""
    code = _head_code("fallback_due")
    assert re.search(r"@DailyAt\s+varchar\(6\)", code, re.IGNORECASE)
    assert "DATALENGTH(@DailyAt) <> 5" in code
    assert re.search(r"@DailyAt\s+COLLATE\s+Latin1_General_BIN2\s+NOT\s+LIKE", code)


# ------------------------------------------------------------------------------
# Headers: each twin difference on a line of its own
# ------------------------------------------------------------------------------

DIFFERENCES_LINE = re.compile(
    r"^-- (?:Twin differences|Differences from the PostgreSQL twin)\b.*$", re.IGNORECASE | re.MULTILINE
)
DIFFERENCES_HEAD = re.compile(
    r"^-- Differences from the PostgreSQL twin(?:, forced by the engine)?, one (?:line each|a line):$"
)
DIFFERENCE_ITEM = re.compile(r"^--   \* \S")
NO_DIFFERENCE = re.compile(r": none\b[^.()]*\.$")  # "none in behaviour." on its one line


def test_each_twin_difference_is_listed_on_a_line_of_its_own():
    """A header that names its twin's differences lists them one a line ("--   * ..."), so a
    reviewer can tick them off against the twin; a paragraph hides one difference inside another."""
    problems = []
    for path in sqlchecks.latest_tsql_procedures():
        text = path.read_text(encoding="utf-8")
        header = text[: text.index("CREATE OR ALTER")]
        for m in DIFFERENCES_LINE.finditer(header):
            following = header[m.end() + 1 :].splitlines()
            if NO_DIFFERENCE.search(m[0]):
                continue
            if not DIFFERENCES_HEAD.match(m[0]) or not following or not DIFFERENCE_ITEM.match(following[0]):
                problems.append(f"{path.name}: {m[0][:80]}")
    assert problems == []


# ------------------------------------------------------------------------------
# DBA review of migrations 0021-0024 (finding F13 of that review)
# ------------------------------------------------------------------------------


def test_the_drain_batch_reads_at_most_a_batch_of_staged_documents():
    """F13: a filter on a window result is not pushed into the scan; TOP (@BatchSize) is."""
    code = _head_code("upload_drain_batch")
    batch = code[code.index("INSERT INTO @Batch") :]
    batch = batch[: batch.index(";")]
    assert re.search(r"SELECT\s+TOP\s+\(@BatchSize\)\s+s\.DocNo", batch)
    assert re.search(r"ORDER\s+BY\s+s\.DocNo\s*\)\s*AS\s+x", batch)
