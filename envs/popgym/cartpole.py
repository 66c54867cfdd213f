"""cartpole: not implemented yet (registers nothing)."""
