"""Executes the README's "Use the losses in your own JAX code" snippet so it cannot rot."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Use the losses in your own JAX code"


def _snippet_source() -> tuple[str, Path]:
    """The first ```python block after the heading in README.md."""
    path = REPO_ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    start = text.find(HEADING)
    if start < 0:
        pytest.fail(f"README.md does not contain the heading {HEADING!r}")
    match = re.search(r"^```python[ \t]*\n(.*?)^```", text[start:], re.S | re.M)
    if match is None:
        pytest.fail(f"{path}: no ```python block after {HEADING!r}")
    return match.group(1), path


def test_readme_losses_snippet_runs(capsys):
    source, path = _snippet_source()
    assert "csc_jax" in source and "losses" in source
    code = compile(source, f"{path.name}:{HEADING}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - executing our own documentation
    out = capsys.readouterr().out
    assert "loss=" in out and "dB" in out
