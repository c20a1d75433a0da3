"""The run report: ``OUTPUT_DIR/report/index.html`` with figures, incident windows and chains.

``aggregate`` reads all_data.ndjson in one parallel streaming pass into per-minute figures,
``series`` names what is plotted (and written to data.json), ``figures`` draws the PNGs,
``page`` writes the HTML, ``output_dir`` reads and checks the output directory, ``cli`` is the
``storefront-sim report`` command.
"""

from sim.report.cli import build_report, main

__all__ = ["build_report", "main"]
