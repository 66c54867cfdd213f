"""higher_lower: not implemented yet (registers nothing)."""
