"""Helpers for the notebooks in ``notebooks/``: installation, runtime detection, sizes and figure files.

This module imports nothing heavy (no jax) at import time, so a notebook's first cell can call it BEFORE the
dependencies are installed:

- ``install(source)`` installs shm-jax from ``source`` (``SHM_JAX_SOURCE``: a git+https URL, a checkout, a wheel,
  or the package name once the project has published it: shm_jax/tools/links.py renders the notebooks' default from
  pyproject.toml) with its dependencies, and keeps a preinstalled jax that lies in the project's range (Colab's
  TPU and GPU runtimes ship one: replacing it would swap libtpu or pull ~3 GB of CUDA wheels and force a
  restart). Only an absent or out-of-range jax is (re)installed, with the extra of the runtime. It is a no-op
  when ``shm_jax`` and its dependencies are already importable (CI, a local checkout, a second run);
- ``plan_install(...)`` is the decision alone (pure: the installed versions are passed in), for the tests;
- ``detect_runtime()`` -> "tpu" | "gpu" | "cpu", from the machine (no jax import);
- ``notebook_size()`` reads ``SHM_NOTEBOOK_SIZE`` (tiny | full) so one notebook runs in seconds in the
  tests and at full size on Colab; ``output_dir()`` reads ``SHM_NOTEBOOK_OUTPUTS`` (default
  ``notebook_outputs/``); ``save_and_show(fig, name)`` writes a figure there and displays it;
  ``describe_devices()`` prints the backend and devices.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

RUNTIMES = ("tpu", "gpu", "cpu")
JAX_EXTRAS = {"tpu": "jax[tpu]", "gpu": "jax[cuda12]", "cpu": "jax"}
# The project's jax range (pyproject.toml; gymnax 1.0.1 needs jax < 0.12). A test keeps the two equal.
JAX_VERSION_SPEC = ">=0.7.2,<0.12"
JAX_MIN, JAX_BELOW = (0, 7, 2), (0, 12)
# Distributions that make a jax install use an accelerator: any one of them present = that runtime's jax is there.
ACCELERATOR_PLUGINS = {
    "tpu": ("libtpu", "libtpu-nightly"),
    "gpu": ("jax-cuda12-plugin", "jax-cuda13-plugin"),
    "cpu": (),
}

SOURCE_ENV = "SHM_JAX_SOURCE"
# No default source: the notebooks' install cell carries the one pyproject.toml declares (shm_jax/tools/links.py), and
# an unset source is a one-line error rather than a guess (an unpublished package name could be anyone's).
MISSING_SOURCE = f"{SOURCE_ENV} is not set: set it to a git+https URL of shm-jax or the path of a checkout"
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


def detect_runtime(
    environ: Mapping[str, str] | None = None,
    path_exists: Callable[[str], bool] = os.path.exists,
    which: Callable[[str], str | None] = shutil.which,
) -> str:
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
    """The pip requirement of jax for ``runtime``, e.g. ``"jax[cuda12]>=0.7.2,<0.12"`` for "gpu"."""
    return JAX_EXTRAS[_check_runtime(runtime)] + JAX_VERSION_SPEC


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "0.7.2" -> (0, 7, 2), "0.10.2.dev20250101" -> (0, 10, 2)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def jax_in_range(version: str | None) -> bool:
    """Whether an installed jax ``version`` satisfies the project's range (``JAX_VERSION_SPEC``)."""
    return version is not None and JAX_MIN <= _release(version) < JAX_BELOW


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pip_requirement(source: str) -> str:
    """``SHM_JAX_SOURCE`` as a pip requirement: anything ``pip install`` takes (a git+https URL, a wheel, the package
    name once published); a directory must be an shm-jax checkout (absolute path)."""
    source = source.strip()
    if not source:
        raise ValueError(MISSING_SOURCE)
    if os.path.isdir(source):
        if not (Path(source) / "pyproject.toml").is_file():
            raise ValueError(f"{SOURCE_ENV}: {source!r} is a directory but not an shm-jax checkout (no pyproject.toml)")
        return str(Path(source).absolute())
    return source


@dataclasses.dataclass(frozen=True)
class InstallPlan:
    """What ``install`` asks pip for, and why (``reason`` is printed)."""

    requirements: tuple[str, ...]
    keeps_jax: bool
    reason: str


def plan_install(source: str, runtime: str, versions: Callable[[str], str | None] = installed_version) -> InstallPlan:
    """The pip requirements that install shm-jax from ``source`` on ``runtime``.

    A jax already installed in the project's range is kept by pinning it and jaxlib to their installed versions
    (pip then changes neither, and libtpu / the CUDA plugin stay as they are); on an accelerator runtime whose jax
    lacks the accelerator's plugin the pin adds the extra (``jax[tpu]==0.7.2``). An absent or out-of-range jax is
    replaced by ``jax[extra]`` in range. ``versions(dist) -> str | None`` reports what is installed (injectable).
    """
    runtime = _check_runtime(runtime)
    package = pip_requirement(source)
    jax, jaxlib = versions("jax"), versions("jaxlib")
    if jax_in_range(jax) and jaxlib is not None:
        plugins = [f"{d} {versions(d)}" for d in ACCELERATOR_PLUGINS[runtime] if versions(d) is not None]
        if runtime == "cpu" or plugins:
            kept = ", ".join([f"jaxlib {jaxlib}"] + plugins)
            return InstallPlan(
                (package, f"jax=={jax}", f"jaxlib=={jaxlib}"), True, f"keeping the preinstalled jax {jax} ({kept})"
            )
        return InstallPlan(
            (package, f"{JAX_EXTRAS[runtime]}=={jax}", f"jaxlib=={jaxlib}"),
            True,
            f"jax {jax} lacks the {runtime} plugin: adding {JAX_EXTRAS[runtime]}=={jax}",
        )
    found = f"jax {jax} is outside {JAX_VERSION_SPEC}" if jax else "jax is not installed"
    return InstallPlan((package, jax_requirement(runtime)), False, f"{found}: installing {jax_requirement(runtime)}")


def install_command(plan: InstallPlan, python: str | None = None) -> list[str]:
    """``python -m pip install -q <requirements>`` as an argument list (one resolver run, so versions agree)."""
    return [python or sys.executable, "-m", "pip", "install", "-q", *plan.requirements]


def is_installed(modules: Sequence[str] = ("shm_jax", "shm_jax.envs", "jax", "flax", "gymnax")) -> bool:
    """Whether every module in ``modules`` can be imported (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def install(source: str | None = None, runtime: str | None = None, *, force: bool = False) -> bool:
    """Install shm-jax from ``source`` (default: ``$SHM_JAX_SOURCE``) for ``runtime`` (default: detected), following
    :func:`plan_install`.

    Skipped (returns False) when the package and its dependencies are already importable, unless ``force``.
    Returns True when pip ran. Raises RuntimeError (one line, naming ``SHM_JAX_SOURCE``) when no source is given or
    pip fails.
    """
    if not force and is_installed():
        print("shm_jax and its dependencies are already importable: nothing to install")
        return False
    source = (source or "").strip() or os.environ.get(SOURCE_ENV, "").strip()
    if not source:
        raise RuntimeError(MISSING_SOURCE)
    runtime = runtime or detect_runtime()
    plan = plan_install(source, runtime, installed_version)
    print(f"runtime: {runtime}; {plan.reason}; installing shm-jax from {source!r}")
    done = subprocess.run(install_command(plan), capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR")]
        why = lines[-1] if lines else f"pip exit {done.returncode}"
        raise RuntimeError(
            f"{SOURCE_ENV}={source!r}: pip could not install it ({why}); set {SOURCE_ENV} to a "
            "git+https URL of shm-jax or the path of a checkout"
        )
    importlib.invalidate_caches()
    stale = stale_modules()
    if stale:
        print(
            f"pip changed {', '.join(stale)}, already imported in this process: restart the runtime "
            "(Colab: Runtime -> Restart session) and run the notebook again"
        )
    return True


# Distributions whose module may already be imported by the notebook host before the install cell runs.
_WATCHED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "jax": "jax",
    "jaxlib": "jaxlib",
    "ml_dtypes": "ml_dtypes",
    "flax": "flax",
    "optax": "optax",
}


def stale_modules() -> list[str]:
    """Imported modules whose installed version now differs from the loaded one (a restart is needed)."""
    stale = []
    for module, dist in _WATCHED.items():
        loaded = getattr(sys.modules.get(module), "__version__", None)
        if loaded is None:
            continue
        installed = installed_version(dist)
        if installed is not None and installed != loaded:
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
