"""Executes the README's "Use the losses in your own JAX code" snippet so it cannot rot."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Use the losses in your own JAX code"
SECTION_FILE = REPO_ROOT / "docs" / "readme_losses_section.md"


def _snippet_source() -> tuple[str, Path]:
    """First ```python block after the heading: README.md if it has the heading, else docs/."""
    readme = REPO_ROOT / "README.md"
    for path in (readme, SECTION_FILE):
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        start = text.find(HEADING)
        if start < 0:
            continue
        match = re.search(r"^```python[ \t]*\n(.*?)^```", text[start:], re.S | re.M)
        if match is None:
            pytest.fail(f"{path}: no ```python block after {HEADING!r}")
        return match.group(1), path
    pytest.fail(f"neither README.md nor {SECTION_FILE} contains the heading {HEADING!r}")


def test_readme_losses_snippet_runs(capsys):
    source, path = _snippet_source()
    assert "csc_jax" in source and "losses" in source
    code = compile(source, f"{path.name}:{HEADING}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - executing our own documentation
    out = capsys.readouterr().out
    assert "loss=" in out and "dB" in out
