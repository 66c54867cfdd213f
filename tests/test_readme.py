"""The README's promises: it opens with the two commands, its Python example runs as written, it stays a short map,
and every relative link in it and in docs/ leads somewhere."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 180

# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert first_block[0].endswith("pip install -e . && python train.py")
    # reference: the PyTorch oracle; aot: tests/tools compiles for TPU and GPU from the CPU host (libtpu, the CUDA
    # plugin, ptxas); suites: the outside suites' adapters (popgym-arcade without its stable-gymnax dependency)
    install = 'pip install -e ".[dev,reference,aot,suites]" && pip install --no-deps popgym-arcade==0.0.7'
    assert first_block[1].endswith(f"{install} && python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    # (CI skips pip's byte-compiling: --no-compile installs the same packages)
    assert 'pip install -q --no-compile -e ".[dev,reference,aot,suites]"' in ci and "python -m pytest -q" in ci
    assert 'pip install -q --no-compile --no-deps "popgym-arcade==0.0.7"' in ci


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["y"].shape == (100, 8, 32)
    assert namespace["carry"].shape == (8, 32, 32)


def test_readme_is_a_short_map():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code (blocks and inline) that point into the repository: no scheme, no mail, no bare
    #anchor; the #fragment stripped."""
    targets = []
    for target in LINK.findall(INLINE_CODE.sub("", FENCE.sub("", markdown))):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, ... and anchors within the page
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_are_found_and_others_skipped():
    text = (
        '[a](docs/x.md#part) ![b](img.png) [c](https://e.org/y.md) [d](#top) [f](g.md "title") '
        "[m](mailto:a@b.c) [`code text`](h.md) `[inline](not/a/link.md)`\n```\n[code](not/a/link.md)\n```\n"
    )
    assert relative_links(text) == ["docs/x.md", "img.png", "g.md", "h.md"]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"
