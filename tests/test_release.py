"""What a release carries: one version (shm_jax/__init__.py, read by the build), the license, how to cite the software
and the paper, and a changelog that starts at this version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import shm_jax

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PAPER_AUTHORS = [("Le", "Hung"), ("Do", "Kien"), ("Nguyen", "Dung"), ("Gupta", "Sunil"), ("Venkatesh", "Svetha")]


def test_the_version_is_written_once_and_read_by_the_build():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "shm_jax.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", shm_jax.__version__)
    # written as a plain string literal, so setuptools reads it without importing the package
    assert f'__version__ = "{shm_jax.__version__}"' in (REPO / "shm_jax" / "__init__.py").read_text()


def test_the_license_is_apache_2_and_ships_in_the_wheel():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a notice
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_command_line_is_a_console_script():
    assert PYPROJECT["project"]["scripts"] == {"shm-jax": "shm_jax.cli:main"}


def test_citation_names_the_software_and_the_paper():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == shm_jax.__version__ and cff["license"] == PYPROJECT["project"]["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Stable Hadamard Memory: Revitalizing Memory-Augmented Agents for Reinforcement Learning"
    assert [(a["family-names"], a["given-names"]) for a in paper["authors"]] == PAPER_AUTHORS
    assert paper["year"] == 2025 and "2410.10132" in paper["url"]
    # the README's BibTeX names the same authors in the same order
    bibtex = re.search(r"author\s*=\s*\{(.*?)\}", (REPO / "README.md").read_text()).group(1)
    assert [tuple(p.strip().split(", ")) for p in bibtex.split(" and ")] == PAPER_AUTHORS


def test_the_changelog_starts_at_this_version():
    first = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first == shm_jax.__version__
