"""battleship: not implemented yet (registers nothing)."""
