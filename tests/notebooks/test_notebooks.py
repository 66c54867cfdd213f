"""The notebooks in notebooks/: executed end to end on CPU at the tiny size, stored without outputs,
and the runtime/install helpers they call (shm_jax.colab).

The kernel is started with THIS interpreter (a kernelspec written to a temporary directory whose argv
is ``sys.executable -m ipykernel_launcher``), so it works in a fresh venv without
``ipykernel install --user``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from shm_jax import colab

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
# notebook -> figure files it must save (names relative to the output directory)
EXPECTED_FIGURES = {
    "quickstart.ipynb": ["quickstart_learning_curve.png"],
    "sweep.ipynb": ["sweep_learning_curves.png", "sweep_mmer.png"],
    "inside_memory.ipynb": ["inside_memory_heatmaps.png", "inside_memory_cumprod.png", "inside_memory_frames.png"],
}
CELL_TIMEOUT_S = 600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


# ----------------------------------------------------------------------------------------------------
# Stored notebooks


def test_every_expected_notebook_exists():
    assert sorted(p.name for p in _notebooks()) == sorted(EXPECTED_FIGURES)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_has_colab_badge_and_size_switch(path):
    text = path.read_text()
    assert "colab-badge.svg" in text and f"notebooks/{path.name}" in text
    assert "colab.notebook_size()" in text and "colab.install(" in text


# ----------------------------------------------------------------------------------------------------
# Execution


def _kernel_manager(kernel_dir: Path):
    """A KernelManager whose only kernelspec runs ipykernel with this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = kernel_dir / "kernels" / "shm-jax-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "shm-jax test kernel", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir / "kernels")], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="shm-jax-test", kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs_tiny_on_cpu(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    outputs = tmp_path / "outputs"
    monkeypatch.setenv(colab.SIZE_ENV, "tiny")
    monkeypatch.setenv(colab.OUTPUT_ENV, str(outputs))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.delenv(colab.RUNTIME_ENV, raising=False)
    # keep the kernel's connection file and IPython profile out of the home directory
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, km=_kernel_manager(tmp_path / "jupyter"), timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{name}: {time.perf_counter() - start:.1f} s")

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    stdout = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "nothing to install" in stdout  # the install cell skipped: the package was importable
    assert "backend: cpu" in stdout
    for figure in EXPECTED_FIGURES[name]:
        path = outputs / figure
        assert path.is_file(), f"{name} did not save {figure}"
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC, f"{figure} is not a real PNG"


# ----------------------------------------------------------------------------------------------------
# shm_jax.colab helpers


def _no_files(path: str) -> bool:
    return False


def _no_tools(name: str) -> None:
    return None


@pytest.mark.parametrize("runtime, requirement", [
    ("tpu", "jax[tpu]>=0.6,<0.12"), ("gpu", "jax[cuda12]>=0.6,<0.12"), ("cpu", "jax>=0.6,<0.12")])
def test_jax_requirement_picks_the_extra_of_the_runtime(runtime, requirement):
    assert colab.jax_requirement(runtime) == requirement


def test_jax_requirement_rejects_unknown_runtime():
    with pytest.raises(ValueError, match="runtime: unknown runtime 'cuda'"):
        colab.jax_requirement("cuda")


def test_install_command_installs_repo_and_jax_together():
    cmd = colab.install_command("gpu", "/content/shm-jax", python="/usr/bin/python3")
    assert cmd[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert cmd[-3:] == ["-e", "/content/shm-jax", "jax[cuda12]>=0.6,<0.12"]
    assert colab.install_command("cpu", "repo", extras=("dev",))[-2] == "repo[dev]"


@pytest.mark.parametrize("environ, files, tools, expected", [
    ({}, set(), set(), "cpu"),
    ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, set(), set(), "tpu"),
    ({"TPU_NAME": "local"}, set(), set(), "tpu"),
    ({}, {"/dev/accel0"}, set(), "tpu"),
    ({}, set(), {"nvidia-smi"}, "gpu"),
    ({}, {"/dev/nvidia0"}, set(), "gpu"),
    ({}, {"/dev/accel0"}, {"nvidia-smi"}, "tpu"),
    ({colab.RUNTIME_ENV: "CPU"}, {"/dev/nvidia0"}, {"nvidia-smi"}, "cpu"),
])
def test_detect_runtime(environ, files, tools, expected):
    runtime = colab.detect_runtime(environ, path_exists=files.__contains__,
                                   which=lambda name: f"/usr/bin/{name}" if name in tools else None)
    assert runtime == expected


def test_detect_runtime_rejects_unknown_override():
    with pytest.raises(ValueError, match=colab.RUNTIME_ENV):
        colab.detect_runtime({colab.RUNTIME_ENV: "quantum"}, path_exists=_no_files, which=_no_tools)


def test_install_is_skipped_when_importable(monkeypatch):
    monkeypatch.setattr(colab.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert colab.install() is False


def test_install_runs_pip_with_the_detected_extra(monkeypatch):
    calls = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    monkeypatch.setattr(colab, "is_installed", lambda: False)
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Done())
    assert colab.install(runtime="tpu") is True
    assert calls == [colab.install_command("tpu", colab.repo_root())]


def test_install_rejects_a_directory_that_is_not_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(colab, "is_installed", lambda: False)
    with pytest.raises(ValueError, match="repo_dir"):
        colab.install(tmp_path, runtime="cpu")


def test_notebook_size_and_output_dir(tmp_path):
    assert colab.notebook_size({}) == "full"
    assert colab.notebook_size({colab.SIZE_ENV: " Tiny "}) == "tiny"
    with pytest.raises(ValueError, match=colab.SIZE_ENV):
        colab.notebook_size({colab.SIZE_ENV: "huge"})
    out = colab.output_dir({colab.OUTPUT_ENV: str(tmp_path / "figs")})
    assert out == tmp_path / "figs" and out.is_dir()


def test_stale_modules_reports_an_upgraded_imported_module(monkeypatch):
    import types

    import numpy

    assert not any(entry.startswith("numpy ") for entry in colab.stale_modules())
    monkeypatch.setitem(sys.modules, "numpy", types.SimpleNamespace(__version__="0.0.1"))
    assert f"numpy 0.0.1 -> {numpy.__version__}" in colab.stale_modules()
