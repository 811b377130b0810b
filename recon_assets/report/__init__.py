"""The ops report: what finance ops opens at 9 AM.

Its own part, beside `warehouse/` (which loads) rather than in it: `data` reads the marts through
a query function (DuckDB or Snowflake alike) into per-day reports, CSV rows and signed-off state;
`render` turns those into self-contained HTML. Neither knows Dagster; `defs/report_assets.py`
wires them.
"""
