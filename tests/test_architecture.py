"""The package's import graph runs one way: no import circle in shm_jax/ or envs/, no hidden local imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("shm_jax", "envs")
# Imports inside functions are allowed only for optional dependencies, and in colab.py, whose functions run
# before the right jax is installed (importing jax at module level would pin the wrong one).
# Optional packages: tensorboard, notebooks, and the aot extra (libtpu, the nvcc wheel, the Triton compiler
# that only CUDA-capable jaxlibs carry).
OPTIONAL = {"tensorboardX", "IPython", "IPython.display", "PIL", "libtpu", "nvidia.cuda_nvcc", "jax._src.lib"}
IMPORTS_JAX_LATE = {"shm_jax/colab.py"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an import refers to (``from shm_jax import networks`` -> ``shm_jax.networks``)."""
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


def test_no_import_circle():
    modules = _modules()
    graph = {name: _top_level_edges(path, modules) - {name} for name, path in modules.items()}
    # a package's __init__ importing its own submodules is how registries fill; only cycles between modules count
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    # the layers the design names: config at the bottom, the CLI-facing host loop at the top
    assert graph["shm_jax.config"] == set()
    assert "shm_jax.training.loop" not in set().union(*(graph[m] for m in graph if m != "shm_jax.training.loop"))
    assert not {m for m in graph["shm_jax.training.evaluation"] if m.startswith(("shm_jax.algorithms.ppo", "shm_jax.training.batched"))}


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
