"""Where the SQL lives: the ``db/`` folder of the checkout, shipped in the wheel as
package ``flp_db`` and found with importlib.resources, so an installed ``flp``
works from any folder."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def _root() -> Path:
    # A wheel and an editable install both give a real folder; as_file keeps
    # this right should the package ever be loaded from an archive.
    with as_file(files("flp_db")) as path:
        return Path(path)


SQL_ROOT = _root()
SCHEMA_DIR = SQL_ROOT / "schema"
PROCEDURES_DIR = SQL_ROOT / "procedures"
MIGRATIONS_DIR = SQL_ROOT / "migrations"
