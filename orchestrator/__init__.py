"""FLP job system: the orchestrator that runs the FLP database jobs.

The data work lives in versioned stored procedures under ``db/procedures``; this
package only starts them, moves messages and renders reports.
"""

from pathlib import Path

__version__ = "0.1.0"

# The checkout root: db/, alembic.ini and docs/ live beside this package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
