"""multiarmed_bandit: not implemented yet (registers nothing)."""
