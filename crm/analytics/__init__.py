"""Computations behind the dashboards: pure functions of (db, user, ...), aggregated in SQL."""
