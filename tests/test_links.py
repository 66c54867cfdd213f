"""The project's location is declared once (pyproject.toml [project.urls] Repository, [tool.shm-jax] published) and
the notebooks' Colab badges and install cell and the README's and docs' GitHub links agree with it
(shm_jax/tools/links.py renders them; ``python -m shm_jax.tools.links`` rewrites what drifted)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from shm_jax.tools import colab, links

REPO = Path(__file__).resolve().parents[1]
LOCATION = links.location(REPO / "pyproject.toml")


def test_every_rendered_file_agrees_with_pyproject():
    assert links.render(REPO) == {}, "out of sync with pyproject.toml's location: run python -m shm_jax.tools.links"
    assert links.main(["--check"]) == 0


def test_every_badge_and_github_link_names_the_declared_location():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        badges = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", text)
        assert badges == [links.badge_url(LOCATION, path.name)], path.name
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *notebooks]
    owners = {m.group(1) for page in pages for m in links.GITHUB_LINK.finditer(page.read_text())}
    assert owners <= {LOCATION.owner}, owners


def test_no_default_source_names_a_package_the_project_has_not_published():
    assert not hasattr(colab, "DEFAULT_SOURCE")
    cell = links.install_cell(LOCATION)
    default = re.search(r'^SHM_JAX_SOURCE = "(.*)"  # @param', cell, re.M).group(1)
    assert default == LOCATION.default_source
    if not LOCATION.published:
        assert links.PACKAGE_NAME not in {default, default.split("==")[0]}
    if LOCATION.placeholder:
        assert default == ""


def test_the_default_follows_the_location_and_the_published_switch():
    placeholder = links.Location("https://github.com/OWNER/shm-jax", published=False)
    real = links.Location("https://github.com/someone/shm-jax", published=False)
    published = links.Location("https://github.com/someone/shm-jax", published=True)
    assert (placeholder.default_source, real.default_source, published.default_source) == (
        "",
        "git+https://github.com/someone/shm-jax",
        "shm-jax",
    )
    assert links.badge_url(real, "sweep.ipynb") == (
        "https://colab.research.google.com/github/someone/shm-jax/blob/main/notebooks/sweep.ipynb"
    )


def test_setting_the_location_in_pyproject_rewrites_badges_cells_and_links(tmp_path):
    for name in ("README.md", "docs", "notebooks"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    text = (REPO / "pyproject.toml").read_text().replace(LOCATION.repository, "https://github.com/someone/shm-jax")
    (tmp_path / "pyproject.toml").write_text(text)
    changed = links.render(tmp_path)
    assert {p.parent.name for p in changed} >= {"notebooks"}
    for path, new in changed.items():
        assert "github.com/someone/shm-jax" in new or "github/someone/shm-jax" in new, path
        assert f"/{links.PLACEHOLDER_OWNER}/" not in new, path
    quickstart = changed[tmp_path / "notebooks" / "quickstart.ipynb"]
    assert 'SHM_JAX_SOURCE = \\"git+https://github.com/someone/shm-jax\\"  # @param' in quickstart


def test_install_cell_without_a_source_stops_with_one_line_and_installs_nothing(tmp_path):
    """Where shm_jax is not importable (-I -S: no site-packages, like a fresh Colab runtime), an empty SHM_JAX_SOURCE
    stops the cell before pip runs, with one line saying what to set."""
    cell = links.install_cell(links.Location("https://github.com/OWNER/shm-jax", published=False))
    env = {k: v for k, v in os.environ.items() if k != colab.SOURCE_ENV}
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", cell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: set SHM_JAX_SOURCE") and "git+https URL" in last, out.stderr
    assert "pip" not in out.stderr.replace(last, "")
