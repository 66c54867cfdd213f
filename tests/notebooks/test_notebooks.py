"""The notebooks in notebooks/: executed end to end on CPU at the tiny size, stored without outputs,
and the runtime/install helpers they call (shm_jax.tools.colab).

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
from types import SimpleNamespace

import pytest

from shm_jax.tools import colab, links

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


@pytest.mark.slow
@pytest.mark.colab  # CI runs it in the Colab-stack job (.ci/colab_stack), on the versions Colab ships
@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs_tiny_on_cpu(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    outputs = tmp_path / "outputs"
    monkeypatch.setenv(colab.SIZE_ENV, "tiny")
    monkeypatch.setenv(colab.OUTPUT_ENV, str(outputs))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    # Where shm-jax's dependencies are not installed (.ci/colab_stack: Colab's jax stack plus the built wheel without
    # its dependencies, as the install cell's first step leaves it), the first cell installs them from SHM_JAX_SOURCE
    # (CI: the wheel; else this checkout), as a Colab user's would; elsewhere the install cell has nothing to do.
    fresh = not colab.is_installed()
    jax_before = colab.installed_version("jax")
    if fresh:
        monkeypatch.setenv(colab.SOURCE_ENV, os.environ.get(colab.SOURCE_ENV, "").strip() or str(REPO))
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
    if fresh:  # installed shm-jax and its missing dependencies, kept the preinstalled jax
        assert f"keeping the preinstalled jax {jax_before}" in stdout
        assert colab.installed_version("jax") == jax_before and colab.is_installed()
    else:
        assert "nothing to install" in stdout  # the install cell skipped: the package was importable
    assert "backend: cpu" in stdout
    for figure in EXPECTED_FIGURES[name]:
        path = outputs / figure
        assert path.is_file(), f"{name} did not save {figure}"
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC, f"{figure} is not a real PNG"


# ----------------------------------------------------------------------------------------------------
# shm_jax.tools.colab helpers


def _no_files(path: str) -> bool:
    return False


def _no_tools(name: str) -> None:
    return None


def _versions(**installed: str):
    """A fake ``installed_version``: distribution names with '-' written as '_' in the keywords."""
    table = {name.replace("_", "-"): version for name, version in installed.items()}
    return table.get


@pytest.mark.parametrize("runtime, requirement", [
    ("tpu", "jax[tpu]>=0.7.2,<0.12"), ("gpu", "jax[cuda12]>=0.7.2,<0.12"), ("cpu", "jax>=0.7.2,<0.12")])
def test_jax_requirement_picks_the_extra_of_the_runtime(runtime, requirement):
    assert colab.jax_requirement(runtime) == requirement


def test_jax_requirement_rejects_unknown_runtime():
    with pytest.raises(ValueError, match="runtime: unknown runtime 'cuda'"):
        colab.jax_requirement("cuda")


def test_jax_range_and_accelerator_extras_match_pyproject():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    jax_dependency = [d for d in project["dependencies"] if d.startswith("jax")]
    assert jax_dependency == ["jax" + colab.JAX_VERSION_SPEC]
    extras = project["optional-dependencies"]
    assert extras["cuda12"] == ["jax[cuda12]" + colab.JAX_VERSION_SPEC]
    assert extras["cuda13"] == ["jax[cuda13]" + colab.JAX_VERSION_SPEC]
    assert extras["tpu"] == ["jax[tpu]" + colab.JAX_VERSION_SPEC]


@pytest.mark.parametrize("version, inside", [
    ("0.7.2", True), ("0.10.2", True), ("0.11.9", True), ("0.10.2.dev20260101", True), ("0.7.1", False),
    ("0.6.2", False), ("0.12.0", False), ("1.0", False), (None, False)])
def test_jax_in_range(version, inside):
    assert colab.jax_in_range(version) is inside


def test_colab_tpu_runtime_keeps_its_jax_and_libtpu():
    # Colab's TPU runtime: jax/jaxlib 0.7.2 with libtpu 0.0.21.1 (jax 0.7.2's own tpu extra would pin 0.0.23).
    plan = colab.plan_install("shm-jax", "tpu", _versions(jax="0.7.2", jaxlib="0.7.2", libtpu="0.0.21.1"))
    assert plan.requirements == ("shm-jax", "jax==0.7.2", "jaxlib==0.7.2")
    assert plan.keeps_jax and "libtpu 0.0.21.1" in plan.reason
    assert not any("libtpu" in r or "[tpu]" in r for r in plan.requirements)


def test_colab_gpu_runtime_keeps_its_cuda_jax():
    plan = colab.plan_install("shm-jax", "gpu", _versions(jax="0.7.2", jaxlib="0.7.2", jax_cuda12_plugin="0.7.2"))
    assert plan.requirements == ("shm-jax", "jax==0.7.2", "jaxlib==0.7.2")  # no [cuda12]: no 3 GB download
    assert plan.keeps_jax


def test_gpu_runtime_with_a_cpu_only_jax_adds_the_plugin_of_the_same_version():
    plan = colab.plan_install("shm-jax", "gpu", _versions(jax="0.8.1", jaxlib="0.8.1"))
    assert plan.requirements == ("shm-jax", "jax[cuda12]==0.8.1", "jaxlib==0.8.1")


@pytest.mark.parametrize("runtime", ["tpu", "gpu", "cpu"])
@pytest.mark.parametrize("jax_version", ["0.12.1", "0.6.2", None])
def test_out_of_range_or_missing_jax_is_replaced_inside_the_range(runtime, jax_version):
    installed = _versions(jax=jax_version, jaxlib=jax_version, libtpu="0.0.30") if jax_version else _versions()
    plan = colab.plan_install("shm-jax", runtime, installed)
    assert plan.requirements == ("shm-jax", colab.jax_requirement(runtime))
    assert not plan.keeps_jax


def test_cpu_runtime_keeps_an_in_range_jax():
    plan = colab.plan_install("shm-jax", "cpu", _versions(jax="0.10.2", jaxlib="0.10.2"))
    assert plan.requirements == ("shm-jax", "jax==0.10.2", "jaxlib==0.10.2")


def test_pip_requirement_accepts_pip_sources_and_checkouts(tmp_path):
    assert colab.pip_requirement(" shm-jax ") == "shm-jax"
    assert colab.pip_requirement("git+https://github.com/o/shm-jax") == "git+https://github.com/o/shm-jax"
    assert colab.pip_requirement(str(REPO)) == str(REPO.absolute())
    with pytest.raises(ValueError, match=f"{colab.SOURCE_ENV}: .* not an shm-jax checkout"):
        colab.pip_requirement(str(tmp_path))
    with pytest.raises(ValueError, match=f"{colab.SOURCE_ENV} is not set"):
        colab.pip_requirement("  ")


def test_install_is_skipped_when_importable(monkeypatch):
    monkeypatch.setattr(colab.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert colab.install() is False


class _Pip:
    """Records pip command lines; answers with ``returncode`` and ``output``."""

    def __init__(self, returncode=0, output=""):
        self.calls, self.returncode, self.output = [], returncode, output

    def __call__(self, command, **kwargs):
        self.calls.append(command)
        return SimpleNamespace(returncode=self.returncode, stdout=self.output, stderr="")


def test_install_asks_pip_for_the_plan_from_the_source_variable(monkeypatch, capsys):
    pip = _Pip()
    monkeypatch.setattr(colab, "is_installed", lambda: False)
    monkeypatch.setattr(colab, "installed_version", _versions(jax="0.7.2", jaxlib="0.7.2", libtpu="0.0.21.1"))
    monkeypatch.setattr(colab.subprocess, "run", pip)
    monkeypatch.setenv(colab.SOURCE_ENV, "git+https://github.com/o/shm-jax")
    assert colab.install(runtime="tpu") is True
    assert pip.calls == [[sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/o/shm-jax",
                          "jax==0.7.2", "jaxlib==0.7.2"]]
    assert "keeping the preinstalled jax 0.7.2" in capsys.readouterr().out
    monkeypatch.delenv(colab.SOURCE_ENV)
    with pytest.raises(RuntimeError) as error:  # no source: no guess (an unpublished package name could be anyone's)
        colab.install(runtime="cpu")
    assert str(error.value) == colab.MISSING_SOURCE and len(pip.calls) == 1


def test_install_failure_is_one_line_naming_the_source_variable(monkeypatch):
    pip = _Pip(returncode=1, output="Collecting nope\nERROR: No matching distribution found for nope\n")
    monkeypatch.setattr(colab, "is_installed", lambda: False)
    monkeypatch.setattr(colab.subprocess, "run", pip)
    with pytest.raises(RuntimeError) as error:
        colab.install("nope", runtime="cpu")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{colab.SOURCE_ENV}='nope': pip could not install it (ERROR: No matching")


def test_notebook_first_cells_need_no_edit():
    """The install cell is the one shm_jax/tools/links.py renders from pyproject.toml's location (tests/test_links.py
    checks the whole notebooks); no hand-edited placeholder in the code."""
    expected = links.install_cell(links.location(REPO / "pyproject.toml"))
    for path in _notebooks():
        nb = json.loads(path.read_text())
        first_code = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert first_code == expected, path.name
        assert "colab.install(SHM_JAX_SOURCE)" in first_code and "colab.describe_devices()" in first_code
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert "<org>" not in code and "EDIT" not in code, path.name


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
