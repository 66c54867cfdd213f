"""The paper's experiments as runnable reproductions: ``python -m experiments --help``."""
