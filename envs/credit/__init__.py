"""Long-term credit-assignment tasks of the SHM paper (Visual Match, Key-to-Door). Not implemented yet."""
