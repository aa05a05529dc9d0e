"""Adapters to the data sources: the only code that imports their client libraries."""
