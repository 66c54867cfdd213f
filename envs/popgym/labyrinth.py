"""labyrinth: not implemented yet (registers nothing)."""
