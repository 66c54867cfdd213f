"""repeat_previous: not implemented yet (registers nothing)."""
