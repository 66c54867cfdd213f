"""pendulum: not implemented yet (registers nothing)."""
