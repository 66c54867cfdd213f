"""minesweeper: not implemented yet (registers nothing)."""
