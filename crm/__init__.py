"""A low-code CRM on one DuckDB file."""
