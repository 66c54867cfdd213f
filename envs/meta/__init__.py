"""Meta-RL tasks of the SHM paper (Wind, Point Robot). Not implemented yet."""
