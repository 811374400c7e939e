"""The inline chart of the mail: the last 14 days' runs, failures and AIM backlog, as PNG bytes.

matplotlib with the Agg backend (no display). Its font cache goes to ``MPLCONFIGDIR``; when that
is unset it is pointed at ``config_dir`` (the FLP data folder) so nothing is written under ~.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from reports.statistics import TrendPoint


def png(trend: list[TrendPoint], config_dir: Path | None = None) -> bytes:
    if config_dir is not None and "MPLCONFIGDIR" not in os.environ:
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(config_dir)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    days = [p.day.strftime("%d.%m") for p in trend]
    x = range(len(trend))
    figure = Figure(figsize=(7.2, 3.0), dpi=100)
    runs_axis = figure.add_subplot()
    runs_axis.bar(x, [p.runs for p in trend], color="#9db4d0", label="runs")
    runs_axis.bar(x, [p.failures for p in trend], color="#c0392b", label="failures")
    runs_axis.set_ylabel("job runs")
    runs_axis.set_xticks(list(x), days, fontsize=7, rotation=45)
    backlog_axis = runs_axis.twinx()
    backlog_axis.plot(list(x), [p.backlog for p in trend], color="#2c3e50", marker="o", label="AIM backlog")
    backlog_axis.set_ylabel("AIM backlog (rows)")
    backlog_axis.set_ylim(bottom=0)
    runs_axis.set_ylim(bottom=0)
    handles = runs_axis.get_legend_handles_labels()[0] + backlog_axis.get_legend_handles_labels()[0]
    runs_axis.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=7, frameon=False)
    runs_axis.set_title("Last 14 days (UTC)", fontsize=9)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
