"""Pure statistics and decisions: no I/O, no client libraries."""
