"""What the wheel installs: every package folder, under one import name (shm_jax), and no generic top-level name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """Where a package's files are, following pyproject's package-dir (longest matching prefix)."""
    mapping = SETUPTOOLS.get("package-dir", {})
    prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len, default="")
    rest = package[len(prefix) :].lstrip(".").split(".") if prefix else package.split(".")
    return REPO.joinpath(mapping.get(prefix, ""), *[r for r in rest if r])


def test_the_package_list_names_every_folder_with_code_and_nothing_else():
    listed = set(SETUPTOOLS["packages"])
    assert all(_folder(p).joinpath("__init__.py").is_file() for p in listed), listed
    on_disk = set()
    for prefix, root in (("shm_jax", REPO / "shm_jax"), ("shm_jax.envs", REPO / "envs")):
        for path in root.rglob("*.py"):
            if "__pycache__" not in path.parts:
                on_disk.add(".".join((prefix, *path.parent.relative_to(root).parts)))
    assert on_disk == listed, f"add to or remove from [tool.setuptools] packages: {sorted(on_disk ^ listed)}"
    assert {p.split(".")[0] for p in listed} == {"shm_jax"}


def test_nothing_imports_the_environments_under_a_second_name():
    """``envs`` only as ``shm_jax.envs``: a second name would load (and register) every environment twice."""
    pattern = re.compile(r"^\s*(\"|')?\s*(import envs\b|from envs\b)", re.MULTILINE)
    offenders = []
    # os.walk with the virtualenvs pruned: rglob would list every file of .venv and .venv-colab first.
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [d for d in subfolders if d not in {".venv", ".venv-colab", "build", ".git", ".jax_cache"}]
        for name in files:
            if name.endswith((".py", ".ipynb", ".md")):
                path = Path(folder) / name
                if pattern.search(path.read_text(errors="replace")):
                    offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_a_project_with_its_own_envs_package_still_gets_shm_jax_environments(tmp_path):
    """Research code often has an ``envs/`` of its own; it must not shadow shm-jax's environments."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("MINE = True\n")
    code = (
        "import importlib, shm_jax.envs as shm_envs\n"
        "mine = importlib.import_module('envs')\n"
        "assert mine.MINE and shm_envs is not mine\n"
        "print(len(shm_envs.list_ids()), 'AutoencodeEasy' in shm_envs.list_ids())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    count, found = out.stdout.split()
    assert int(count) > 50 and found == "True"
