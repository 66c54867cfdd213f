"""autoencode: not implemented yet (registers nothing)."""
