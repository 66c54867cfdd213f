"""The project's location, declared once, and everything rendered from it.

pyproject.toml declares where shm-jax lives (``[project.urls] Repository``) and whether the project has published it
on the package index (``[tool.shm-jax] published``). From those two values this tool renders

- the notebooks' Colab badges (``https://colab.research.google.com/github/OWNER/NAME/blob/main/notebooks/X.ipynb``);
- the notebooks' install cell (the same first code cell in every notebook), whose ``SHM_JAX_SOURCE`` default is the
  package name once published, else ``git+<Repository>``, and empty while the Repository is a placeholder (owner
  ``OWNER``): the cell then stops with one line asking for ``SHM_JAX_SOURCE``. No default names a package the
  project has not published;
- every ``github.com/<owner>/<name>`` link in the README, docs/ and the notebooks.

Usage (in a checkout): ``python -m shm_jax.tools.links`` rewrites what differs; ``--check`` lists it and exits 1
(tests/test_links.py runs the check). Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER_OWNER = "OWNER"
PACKAGE_NAME = "shm-jax"
SOURCE_ENV = "SHM_JAX_SOURCE"
# A GitHub project link (also inside a Colab badge or a git+https URL); group 1: owner, group 2: repository name.
GITHUB_LINK = re.compile(r"github(?:\.com)?/([A-Za-z0-9_.<>-]+)/(shm-jax)\b")
TEXT_FILES = ("README.md", "docs/*.md", "notebooks/*.ipynb")


@dataclasses.dataclass(frozen=True)
class Location:
    repository: str  # https://github.com/OWNER/NAME
    published: bool

    @property
    def owner(self) -> str:
        return self.repository.rstrip("/").split("/")[-2]

    @property
    def name(self) -> str:
        return self.repository.rstrip("/").split("/")[-1]

    @property
    def placeholder(self) -> bool:
        return self.owner == PLACEHOLDER_OWNER

    @property
    def default_source(self) -> str:
        """What the notebooks install by default: the package name once published, the repository while it is not,
        nothing while the repository is a placeholder."""
        if self.published:
            return PACKAGE_NAME
        return "" if self.placeholder else f"git+{self.repository}"


def location(pyproject: Path = REPO / "pyproject.toml") -> Location:
    """The location pyproject.toml declares (a https://github.com/OWNER/NAME Repository URL)."""
    data = tomllib.loads(Path(pyproject).read_text())
    repository = data["project"]["urls"]["Repository"]
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise ValueError(f"[project.urls] Repository: expected https://github.com/OWNER/NAME, got {repository!r}")
    return Location(repository, bool(data.get("tool", {}).get("shm-jax", {}).get("published", False)))


def badge_url(loc: Location, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{loc.owner}/{loc.name}/blob/main/notebooks/{notebook}"


def install_cell(loc: Location) -> str:
    """The first code cell of every notebook."""
    return f'''# Install shm-jax and print the backend Skipped when shm_jax is importable (a checkout, CI, a rerun).
# {SOURCE_ENV} (form field, or the environment variable of that name): what pip installs shm-jax from, a git+https URL
# (e.g. git+{loc.repository}, or your fork) or a checkout path; its default comes from pyproject.toml's
# [project.urls] Repository (empty while that is a placeholder). A preinstalled jax in the project's range (Colab's
# TPU/GPU jax) is kept: only shm-jax and its missing dependencies are installed; an absent or out-of-range jax gets
# jax[tpu] / jax[cuda12] / jax (< 0.12).
import importlib.util
import os
import subprocess
import sys

{SOURCE_ENV} = "{loc.default_source}"  # @param {{type:"string"}}
{SOURCE_ENV} = os.environ.get("{SOURCE_ENV}", {SOURCE_ENV}).strip()

if importlib.util.find_spec("shm_jax") is None:  # fetch shm-jax alone first: its installer is shm_jax.tools.colab
    if not {SOURCE_ENV}:
        raise RuntimeError("set {SOURCE_ENV} (the form field above) to a git+https URL of shm-jax or a checkout path")
    fetched = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", {SOURCE_ENV}],
                             capture_output=True, text=True)
    if fetched.returncode != 0:
        raise RuntimeError(f"{SOURCE_ENV}={{{SOURCE_ENV}!r}}: pip cannot install it; set {SOURCE_ENV} to a "
                           "git+https URL of shm-jax or a checkout path")

from shm_jax.tools import colab  # imports no jax: the dependencies are installed next

colab.install({SOURCE_ENV})
print(colab.describe_devices())'''


def _relink(text: str, loc: Location) -> str:
    return GITHUB_LINK.sub(lambda m: m.group(0).replace(f"/{m.group(1)}/", f"/{loc.owner}/", 1), text)


def _render_notebook(path: Path, text: str, loc: Location) -> str:
    nb = json.loads(text)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"])
            source = re.sub(
                r"https://colab\.research\.google\.com/github/[^)\s]+",
                badge_url(loc, path.name),
                source,
            )
            cell["source"] = source.splitlines(keepends=True)
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    first["source"] = install_cell(loc).splitlines(keepends=True)
    rendered = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    return _relink(rendered, loc)


def render(root: Path = REPO) -> dict[Path, str]:
    """{file: its rendered text} for every file whose text differs from what the location renders."""
    loc = location(root / "pyproject.toml")
    changed = {}
    for pattern in TEXT_FILES:
        for path in sorted(root.glob(pattern)):
            text = path.read_text()
            new = _render_notebook(path, text, loc) if path.suffix == ".ipynb" else _relink(text, loc)
            if new != text:
                changed[path] = new
    return changed


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    changed = render()
    if "--check" in argv:
        for path in changed:
            print(f"{path.relative_to(REPO)}: out of sync with pyproject.toml's location (shm_jax/tools/links.py)")
        return 1 if changed else 0
    for path, text in changed.items():
        path.write_text(text)
        print(f"rewrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
