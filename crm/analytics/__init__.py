"""Computations behind the dashboards, satisfaction and the market audit: pure functions
(db, user, ...) that aggregate in SQL over the rows the user may see (records.visible), never
over a sample or a page of rows; each tested on small hand-computed fixtures."""
