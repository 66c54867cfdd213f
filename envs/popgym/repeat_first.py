"""repeat_first: not implemented yet (registers nothing)."""
