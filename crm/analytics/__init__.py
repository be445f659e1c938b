"""Computations over the records: pure, tested on small hand-computed fixtures."""
