"""Dashboards and forecasts: pure functions (db, user, ...) that aggregate in SQL over the rows
the user may see (records.visible), never over a sample or a page of rows."""
