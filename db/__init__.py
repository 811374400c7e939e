"""The SQL side of the FLP job system, shipped inside the package as ``flp_db``.

Schema files (``schema/``), versioned procedures (``procedures/``) and the
Alembic migrations (``migrations/``). Python code finds them with
``orchestrator.db.files``; nothing here is imported.
"""
