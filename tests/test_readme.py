"""The README's promises: it opens with the two commands, and its Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert first_block[0].endswith("pip install -e . && python train.py")
    # aot: tests/aot compiles for TPU and GPU from the CPU host (libtpu, the CUDA plugin, ptxas)
    assert first_block[1].endswith('pip install -e ".[dev,aot]" && python -m pytest -q')
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[dev,aot]"' in ci and "python -m pytest -q" in ci


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["y"].shape == (100, 8, 32)
    assert namespace["carry"].shape == (8, 32, 32)
