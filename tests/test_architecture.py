"""The package's import graph runs one way, folder by folder.

Layers (each may import only what is below it; ``options`` is the bottom):
memory/ and envs/ import nothing above them; agents/ imports memory/; algorithms/ import agents/, memory/,
options (never training/); training/ imports only algorithms/base.py of the algorithms; only the build step
(and the API above it) reaches every algorithm; nothing in the library imports tools/.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# import prefix -> folder: the environments sit in the top-level envs/ folder and import as shm_jax.envs
PACKAGES = {"shm_jax": "shm_jax", "shm_jax.envs": "envs"}
# Imports inside functions are allowed only for optional dependencies, and in tools/colab.py, whose functions run
# before the right jax is installed (importing jax at module level would pin the wrong one).
# Optional packages: tensorboard, wandb, notebooks, and the aot extra (libtpu, the nvcc wheel, the Triton compiler
# that only CUDA-capable jaxlibs carry).
OPTIONAL = {"tensorboardX", "wandb", "IPython", "IPython.display", "PIL", "libtpu", "nvidia.cuda_nvcc", "jax._src.lib"}
# The command line (shm_jax/cli.py) joins a distributed job before it imports the parser and the trainer, which start
# JAX's backend (jax.distributed.initialize must come first).
IMPORTS_JAX_LATE = {"shm_jax/tools/colab.py", "shm_jax/cli.py"}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((prefix, *parts))] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an import refers to (``from shm_jax.agents import heads`` -> ``shm_jax.agents.heads``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _top_level_edges(path: Path, modules: dict[str, Path]) -> set[str]:
    edges = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        edges |= {target for target in (_resolve(n, modules) for n in names) if target}
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _top_level_edges(path, modules) - {name} for name, path in modules.items()}
    # a package's __init__ importing its own submodules is how registries and APIs fill; not an edge up
    return {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}


GRAPH = _graph()


def _in(module: str, *folders: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in folders)


def test_no_import_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def _offenders(sources: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} imports {t}" for m, targets in GRAPH.items() if _in(m, *sources) for t in targets if not _in(t, *allowed)
    )


def test_memory_and_envs_import_nothing_above_them():
    assert _offenders(("shm_jax.memory",), ("shm_jax.memory",)) == []
    assert _offenders(("shm_jax.envs",), ("shm_jax.envs",)) == []
    assert GRAPH["shm_jax.options"] == set()


def test_agents_import_only_memory():
    assert _offenders(("shm_jax.agents",), ("shm_jax.agents", "shm_jax.memory", "shm_jax.options")) == []


def test_algorithms_import_agents_memory_and_options_never_training():
    allowed = ("shm_jax.algorithms", "shm_jax.agents", "shm_jax.memory", "shm_jax.options")
    assert _offenders(("shm_jax.algorithms",), allowed) == []
    # one algorithm never reaches into another: each stands on the shared modules alone
    shared = {"shm_jax.algorithms.base", "shm_jax.algorithms.rollout", "shm_jax.algorithms.replay"}
    for algo in ("shm_jax.algorithms.ppo", "shm_jax.algorithms.pqn", "shm_jax.algorithms.sac"):
        for name, targets in GRAPH.items():
            if _in(name, algo):
                assert not {
                    t for t in targets if _in(t, "shm_jax.algorithms") and not _in(t, algo) and t not in shared
                }, name


def test_training_imports_only_the_base_of_the_algorithms():
    allowed = ("shm_jax.training", "shm_jax.algorithms.base", "shm_jax.config", "shm_jax.options")
    assert _offenders(("shm_jax.training",), allowed) == []


def test_only_the_build_step_and_the_api_reach_the_algorithm_registry_and_envs():
    reach_every_algorithm = {m for m, targets in GRAPH.items() if "shm_jax.algorithms" in targets}
    # config lists the registered sections (it imports the registry package to have the built-ins registered)
    assert reach_every_algorithm <= {"shm_jax.config"}, reach_every_algorithm
    builders = {m for m, targets in GRAPH.items() if "shm_jax.build" in targets and _in(m, "shm_jax")}
    assert builders <= {"shm_jax.api", "shm_jax.tools.aot"}, builders
    envs_users = {m for m, targets in GRAPH.items() if any(_in(t, "shm_jax.envs") for t in targets)} - {"shm_jax"}
    envs_users = {m for m in envs_users if not _in(m, "shm_jax.envs")}
    assert envs_users <= {"shm_jax.build"}, envs_users


def test_nothing_in_the_library_imports_tools():
    importers = {m for m, targets in GRAPH.items() if any(_in(t, "shm_jax.tools") for t in targets)}
    assert {m for m in importers if not _in(m, "shm_jax.tools")} == set(), importers


# The command line sits on top, beside the API: it parses options into a config and calls the API.
CLI = {"shm_jax.cli", "shm_jax.cli_parse", "shm_jax.cli_run", "shm_jax.__main__"}


def test_the_api_sits_above_build_and_training():
    assert {"shm_jax.build", "shm_jax.training.loop"} <= GRAPH["shm_jax.api"]
    assert not any(_in(t, "shm_jax.api") for m, ts in GRAPH.items() if m not in {"shm_jax"} | CLI for t in ts)


def test_the_command_line_sits_on_top_and_nothing_in_the_library_imports_it():
    assert "shm_jax.api" in GRAPH["shm_jax.cli_run"]
    importers = {m for m, targets in GRAPH.items() if targets & CLI}
    assert importers <= CLI, importers


def test_function_local_imports_are_only_for_optional_dependencies():
    offenders = []
    for name, path in _modules().items():
        relative = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    imported = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                    if imported not in OPTIONAL and relative not in IMPORTS_JAX_LATE:
                        offenders.append(f"{relative}:{sub.lineno} imports {imported} inside {node.name}()")
    assert not offenders, offenders


def test_importing_the_package_starts_no_jax():
    """``import shm_jax`` (and its colab helper, its links tool and the command line's entry) loads no JAX: the API is
    imported on first use, the command line's parser after a distributed job is joined."""
    code = "import sys, shm_jax, shm_jax.tools.colab, shm_jax.tools.links, shm_jax.cli; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_package_folders_show_the_pipeline():
    folders = {p.name for p in (REPO / "shm_jax").iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert folders == {"memory", "agents", "algorithms", "training", "tools"}
    files = {p.name for p in (REPO / "shm_jax").glob("*.py")}
    assert files == {"__init__.py", "api.py", "build.py", "config.py", "options.py", "presets.py"} | {
        "__main__.py",
        "cli.py",
        "cli_parse.py",
        "cli_run.py",
    }
