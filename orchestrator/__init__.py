"""FLP job system: the orchestrator that runs the FLP database jobs.

The data work lives in versioned stored procedures (``db/procedures``, shipped as
package ``flp_db``); this package only starts them, moves messages and renders
reports.
"""

__version__ = "0.1.0"
