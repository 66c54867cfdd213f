"""Make the fake trainer importable and keep test runs out of the repository's runs/ folder."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[1]
for path in (str(HERE), str(REPO)):
    if path not in sys.path:
        sys.path.insert(0, path)
