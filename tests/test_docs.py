"""The README stays a quick start (issue #20: it had grown to 506 lines) and every link in it and in docs/ leads
to a file inside the repository (it linked ``../shared/…``, which a clone does not have, and a section that did
not exist)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return LINK.findall(text)


def test_readme_is_a_quick_start():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for section in ("## Set-up", "## Convert", "## Verify", "## Emit", "## Migrate", "## Formats", "## Safety",
                    "## Troubleshooting"):
        assert section in text, section
    assert "pip install tf2torch[" not in text  # not published: install from the clone
    assert "see below" not in text.lower()


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of ``doc`` that leaves ``root``, names a missing file or a missing heading."""
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: — not a file of ours
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.is_relative_to(root):
            broken.append(f"{target}: leaves the repository")
        elif not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(doc):
    assert broken_links(doc) == []
    assert "../shared" not in doc.read_text(encoding="utf-8")


def test_readme_links_every_doc():
    linked = {Path(t.partition("#")[0]).name for t in links(ROOT / "README.md")}
    assert {p.name for p in DOCS[1:]} <= linked


def test_link_checks_can_fail(tmp_path):
    assert slug("Own the result: generated code, torch.export") == "own-the-result-generated-code-torchexport"
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "here.md").write_text("# Here it is\n")
    bad = tmp_path / "repo" / "bad.md"
    bad.write_text("[a](../outside.md) [b](missing.md) [c](here.md#nowhere) [d](here.md#here-it-is) "
                   "[e](https://example.org)\n```\n[f](in-code.md)\n```\n")
    assert broken_links(bad, tmp_path / "repo") == [
        "../outside.md: leaves the repository", "missing.md: no such file", "here.md#nowhere: no heading "
        "#nowhere in here.md"]
