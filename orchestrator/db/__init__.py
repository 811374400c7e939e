"""Database access: URLs, connections and procedure calls, the embedded server and
its databases, the procedure files, and the Alembic commands and helpers."""
