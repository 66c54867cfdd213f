"""count_recall: not implemented yet (registers nothing)."""
