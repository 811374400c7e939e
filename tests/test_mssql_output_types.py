"""SQL Server calls declare their output variables with the types in the
database's catalog (sys.parameters joined to sys.types), not the newest file on
disk. No SQL Server runs here: the type text is built from catalog-like rows,
with the values SQL Server stores (max_length in bytes, -1 for max)."""

from __future__ import annotations

import re

import pytest

from orchestrator.db import connection, procedures
from orchestrator.errors import FlpError

# (sys.types.name, max_length, precision, scale) as SQL Server stores them -> the type to declare.
CATALOG = [
    (("int", 4, 10, 0), "int"),
    (("bigint", 8, 19, 0), "bigint"),
    (("bit", 1, 1, 0), "bit"),
    (("uniqueidentifier", 16, 0, 0), "uniqueidentifier"),
    (("varchar", 10, 0, 0), "varchar(10)"),
    (("varchar", 20, 0, 0), "varchar(20)"),
    (("varchar", 30, 0, 0), "varchar(30)"),
    (("varchar", 32, 0, 0), "varchar(32)"),
    (("varchar", 40, 0, 0), "varchar(40)"),
    (("varchar", 100, 0, 0), "varchar(100)"),
    (("varchar", -1, 0, 0), "varchar(max)"),
    (("char", 1, 0, 0), "char(1)"),
    (("nvarchar", 80, 0, 0), "nvarchar(40)"),  # bytes: two a character
    (("nvarchar", 800, 0, 0), "nvarchar(400)"),
    (("nvarchar", 256, 0, 0), "nvarchar(128)"),
    (("nvarchar", -1, 0, 0), "nvarchar(max)"),
    (("nchar", 20, 0, 0), "nchar(10)"),
    (("varbinary", -1, 0, 0), "varbinary(max)"),
    (("binary", 16, 0, 0), "binary(16)"),
    (("decimal", 5, 9, 3), "decimal(9, 3)"),
    (("numeric", 9, 18, 0), "numeric(18, 0)"),
    (("datetime2", 7, 23, 3), "datetime2(3)"),
    (("datetime2", 8, 27, 7), "datetime2(7)"),
    (("time", 3, 8, 0), "time(0)"),
    (("datetimeoffset", 10, 34, 7), "datetimeoffset(7)"),
    (("datetime", 8, 23, 3), "datetime"),  # a scale in the catalog, none in the declaration
    (("date", 3, 10, 0), "date"),
    (("float", 8, 53, 0), "float"),
    (("real", 4, 24, 0), "real"),
    (("money", 8, 19, 4), "money"),
    (("xml", -1, 0, 0), "xml"),  # -1 like max, but xml takes no length
    (("sysname", 256, 0, 0), "sysname"),
    (("NVARCHAR", 40, 0, 0), "nvarchar(20)"),
]


def _plain(type_text: str) -> str:
    return re.sub(r"\s+", "", type_text.lower())


@pytest.mark.parametrize(("row", "expected"), CATALOG, ids=[e for _, e in CATALOG])
def test_the_type_text_comes_from_the_catalog_row(row, expected):
    assert connection.mssql_type_text(*row) == expected


def test_output_types_are_keyed_by_the_parameter_name_without_at_in_lower_case():
    rows = [
        ("@JobRunId", "bigint", 8, 19, 0),
        ("@Result", "varchar", 20, 0, 0),
        ("@Message", "nvarchar", -1, 0, 0),
    ]
    assert connection.mssql_output_types(rows) == {
        "jobrunid": "bigint",
        "result": "varchar(20)",
        "message": "nvarchar(max)",
    }
    assert connection.mssql_output_types([]) == {}


def test_every_output_type_the_procedures_use_has_a_catalog_case():
    used = {
        _plain(param.type)
        for name, versions in procedures.versions("mssql").items()
        for version in versions
        for param in procedures.routine("mssql", name, version).params
        if param.output
    }
    assert used, "no OUTPUT parameter found in the SQL Server procedures"
    assert used - {_plain(expected) for _, expected in CATALOG} == set()


def test_an_output_the_database_does_not_have_is_named_before_anything_runs():
    # No connection: the check comes first, so nothing is executed.
    with pytest.raises(FlpError, match=r"^Job\.archive_aim has no OUTPUT parameter @Result, @Extra in this"):
        connection._call_mssql(None, "Job.archive_aim", {}, ("Result", "Extra"), {"jobrunid": "bigint"})
