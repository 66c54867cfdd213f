"""concentration: not implemented yet (registers nothing)."""
