"""README.md is the front door: short, Quickstart first, links that resolve, snippets that run.

Checks: README's size (at most 300 lines and 25 KB) and "## Quickstart" within its first 60
lines; every relative Markdown link of README.md and docs/*.md names an existing file; every
```python block of README.md runs on its own (fresh namespace, CPU); README names no internal
tracker entry ("Issue 12", "issue #12").
"""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
MAX_LINES, MAX_BYTES, QUICKSTART_BY_LINE = 300, 25_000, 60

FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
TRACKER = re.compile(r"\bissue\s+#?\d+|\bissue\s*#", re.I)


def _markdown_files() -> list[Path]:
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """Relative link targets of Markdown text, #fragments and ?queries stripped.

    Links inside fenced code blocks and inline code are not links; absolute URLs (any
    scheme: http, https, mailto) and pure #anchors are left out.
    """
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    out = []
    for target in targets:
        if SCHEME.match(target) or target.startswith("#"):
            continue
        path = re.split(r"[#?]", target, maxsplit=1)[0]
        if path:
            out.append(path)
    return out


def broken_links(path: Path) -> list[str]:
    return [
        target
        for target in relative_links(path.read_text(encoding="utf-8"))
        if not (path.parent / target).exists()
    ]


def test_readme_is_short_with_quickstart_first():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"
    size = len(text.encode("utf-8"))
    assert size <= MAX_BYTES, f"README.md is {size} bytes (at most {MAX_BYTES})"
    first = [i for i, line in enumerate(lines, 1) if line.strip() == "## Quickstart"]
    assert first, "README.md has no '## Quickstart' heading"
    assert first[0] <= QUICKSTART_BY_LINE, f"'## Quickstart' is on line {first[0]}"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    assert not broken_links(path), f"{path.relative_to(REPO_ROOT)}: broken relative links"


def test_link_checker_catches_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#top) [web](https://example.org/x.md) [anchor](#quickstart)\n"
        "![img](missing.png) [gone](docs/gone.md 'title')\n"
        "`[code](not_a_link.md)`\n```\n[fenced](also_not.md)\n```\n[ref]: ./nowhere.md\n"
    )
    assert broken_links(page) == ["missing.png", "docs/gone.md", "./nowhere.md"]


def _python_blocks() -> list[str]:
    return PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_snippets():
    assert _python_blocks(), "README.md has no ```python block to run"


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, monkeypatch, capsys):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    source = _python_blocks()[index]
    code = compile(source, f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - executing our own documentation
    capsys.readouterr()


def test_readme_names_no_tracker_entry():
    text = README.read_text(encoding="utf-8")
    hits = [m.group(0) for m in TRACKER.finditer(text)]
    assert not hits, f"README.md names tracker entries: {hits}"
