"""Helpers for the notebooks in ``notebooks/``: runtime detection, installation, sizes and figure files.

This module imports nothing heavy (no jax) at import time, so a notebook can call it BEFORE jax is
installed with the right accelerator extra:

- ``detect_runtime()`` -> "tpu" | "gpu" | "cpu", from the machine (no jax import);
- ``jax_requirement(runtime)`` -> the pip requirement with the matching jax extra
  (``jax[tpu]``, ``jax[cuda12]`` or plain ``jax``), kept below 0.12 because gymnax 1.0.1 needs it;
- ``install_command(runtime, repo_dir)`` -> the pip command line; ``install(repo_dir)`` runs it, and is a
  no-op when ``shm_jax`` and ``envs`` are already importable (CI, a local checkout, a second run);
- ``notebook_size()`` reads ``SHM_NOTEBOOK_SIZE`` (tiny | full) so one notebook runs in seconds in the
  tests and at full size on Colab; ``output_dir()`` reads ``SHM_NOTEBOOK_OUTPUTS`` (default
  ``notebook_outputs/``); ``save_and_show(fig, name)`` writes a figure there and displays it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

RUNTIMES = ("tpu", "gpu", "cpu")
JAX_EXTRAS = {"tpu": "jax[tpu]", "gpu": "jax[cuda12]", "cpu": "jax"}
# gymnax 1.0.1 needs jax < 0.12; the lower bound matches pyproject.toml.
JAX_VERSION_SPEC = ">=0.6,<0.12"

SIZE_ENV = "SHM_NOTEBOOK_SIZE"
SIZES = ("tiny", "full")
DEFAULT_SIZE = "full"
OUTPUT_ENV = "SHM_NOTEBOOK_OUTPUTS"
DEFAULT_OUTPUT_DIR = "notebook_outputs"
RUNTIME_ENV = "SHM_RUNTIME"  # force a runtime ("tpu", "gpu", "cpu") instead of detecting it

# Files and variables that reveal an accelerator without importing jax.
_TPU_ENV_VARS = ("COLAB_TPU_ADDR", "TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_ID")
_TPU_DEVICE_FILES = ("/dev/accel0", "/dev/vfio/0")
_GPU_DEVICE_FILES = ("/dev/nvidia0",)


def detect_runtime(environ: Mapping[str, str] | None = None,
                   path_exists: Callable[[str], bool] = os.path.exists,
                   which: Callable[[str], str | None] = shutil.which) -> str:
    """The accelerator of this machine: "tpu", "gpu" or "cpu" (``SHM_RUNTIME`` overrides).

    TPU: a Colab/Cloud TPU variable (``COLAB_TPU_ADDR``, ``TPU_NAME``, ...) or a TPU device file
    (``/dev/accel0``, ``/dev/vfio/0``); GPU: ``nvidia-smi`` on the PATH or ``/dev/nvidia0``; else CPU.
    environ, path_exists, which: injectable for tests (default: the real machine).
    """
    environ = os.environ if environ is None else environ
    forced = environ.get(RUNTIME_ENV, "").strip().lower()
    if forced:
        return _check_runtime(forced, field=RUNTIME_ENV)
    if any(environ.get(name) for name in _TPU_ENV_VARS) or any(path_exists(p) for p in _TPU_DEVICE_FILES):
        return "tpu"
    if which("nvidia-smi") or any(path_exists(p) for p in _GPU_DEVICE_FILES):
        return "gpu"
    return "cpu"


def _check_runtime(runtime: str, field: str = "runtime") -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"{field}: unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    return runtime


def jax_requirement(runtime: str) -> str:
    """The pip requirement of jax for ``runtime``, e.g. ``"jax[cuda12]>=0.6,<0.12"`` for "gpu"."""
    return JAX_EXTRAS[_check_runtime(runtime)] + JAX_VERSION_SPEC


def install_command(runtime: str, repo_dir: str | os.PathLike, python: str | None = None,
                    extras: Sequence[str] = ()) -> list[str]:
    """``python -m pip install -q -e REPO[extras] "<jax requirement>"`` as an argument list.

    The package's own dependencies pin the rest (flax, optax, gymnax, orbax, ...); the explicit jax
    requirement adds the accelerator extra, in the same resolver run so the versions agree.
    """
    target = str(repo_dir) + (f"[{','.join(extras)}]" if extras else "")
    return [python or sys.executable, "-m", "pip", "install", "-q", "-e", target, jax_requirement(runtime)]


def is_installed(modules: Sequence[str] = ("shm_jax", "envs", "jax", "flax", "gymnax")) -> bool:
    """Whether every module in ``modules`` can be imported (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def repo_root() -> Path:
    """The checkout that holds this module (the directory with pyproject.toml)."""
    return Path(__file__).resolve().parents[1]


def install(repo_dir: str | os.PathLike | None = None, runtime: str | None = None, *, force: bool = False) -> bool:
    """Install the repository at ``repo_dir`` (default: :func:`repo_root`) with the jax extra of
    ``runtime`` (default: detected).

    Skipped (returns False) when the package and its dependencies are already importable, unless
    ``force``. Returns True when pip ran. Raises RuntimeError with pip's last lines when it fails.
    """
    if not force and is_installed():
        print("shm_jax and its dependencies are already importable: nothing to install")
        return False
    runtime = runtime or detect_runtime()
    repo_dir = repo_root() if repo_dir is None else Path(repo_dir)
    if not (Path(repo_dir) / "pyproject.toml").is_file():
        raise ValueError(f"repo_dir: {str(repo_dir)!r} is not an shm-jax checkout (no pyproject.toml)")
    command = install_command(runtime, repo_dir)
    print(f"runtime: {runtime}; running: {' '.join(command)}")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pip install failed (exit {done.returncode}):\n{tail}")
    repo = str(Path(repo_dir).absolute())
    if repo not in sys.path:  # an editable install is only seen by new processes; this one needs the path
        sys.path.insert(0, repo)
    importlib.invalidate_caches()
    stale = stale_modules()
    if stale:
        print(f"pip changed {', '.join(stale)}, already imported in this process: restart the runtime "
              "(Colab: Runtime -> Restart session) and run the notebook again")
    return True


# Distributions whose module may already be imported by the notebook host before the install cell runs.
_WATCHED = {"numpy": "numpy", "scipy": "scipy", "jax": "jax", "jaxlib": "jaxlib", "ml_dtypes": "ml_dtypes",
            "flax": "flax", "optax": "optax"}


def stale_modules() -> list[str]:
    """Imported modules whose installed version now differs from the loaded one (a restart is needed)."""
    import importlib.metadata

    stale = []
    for module, dist in _WATCHED.items():
        loaded = getattr(sys.modules.get(module), "__version__", None)
        if loaded is None:
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != loaded:
            stale.append(f"{module} {loaded} -> {installed}")
    return stale


def notebook_size(environ: Mapping[str, str] | None = None, default: str = DEFAULT_SIZE) -> str:
    """``SHM_NOTEBOOK_SIZE``: "tiny" (seconds, for the tests) or "full" (the default)."""
    environ = os.environ if environ is None else environ
    size = environ.get(SIZE_ENV, "").strip().lower() or default
    if size not in SIZES:
        raise ValueError(f"{SIZE_ENV}: unknown size {size!r}; valid: {', '.join(SIZES)}")
    return size


def output_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory for figures and runs (``SHM_NOTEBOOK_OUTPUTS``, default ``notebook_outputs/``), created."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get(OUTPUT_ENV, "").strip() or DEFAULT_OUTPUT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe_devices() -> str:
    """One line per JAX device (imports jax), e.g. ``backend: tpu, 8 device(s)`` then the devices."""
    import jax

    devices = jax.devices()
    lines = [f"backend: {jax.default_backend()}, {len(devices)} device(s), jax {jax.__version__}"]
    lines += [f"  {d.id}: {d.platform} {d.device_kind}" for d in devices]
    return "\n".join(lines)


def save_and_show(fig, name: str, directory: str | os.PathLike | None = None, dpi: int = 110) -> Path:
    """Save matplotlib ``fig`` as ``<directory>/<name>.png`` (default: ``output_dir()``), close it, display it.

    Displaying the saved file works whatever matplotlib backend is active (``plt.show()`` shows nothing
    under a non-interactive backend such as Agg).
    """
    import matplotlib.pyplot as plt

    path = Path(directory) if directory is not None else output_dir()
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    show_image(path)
    return path


def show_image(path: str | os.PathLike) -> None:
    """Display a PNG in a notebook; prints the path outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        print(f"saved {path}")
        return
    if get_ipython() is None:
        print(f"saved {path}")
        return
    display(Image(filename=str(path)))
