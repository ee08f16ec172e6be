"""Suites: types, loading, validation, the grid of cells, warm start and code fingerprint."""
