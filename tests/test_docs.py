"""The repository speaks only of itself: every document it points to is inside it."""

import re
import subprocess

from workflow_utils import ROOT

OUTSIDE = re.compile(r"(?<![\w/])(MATH|REFERENCES|DESIGN|STYLE|SLURM)\.md|\.\./shared|\.\./MATH")


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        path = ROOT / name
        if path.suffix in (".png", ".pdf", ".npz", ".pt") or not path.is_file():
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_no_file_points_to_a_document_outside_the_repository():
    offenders = [f"{name}:{i + 1}" for name, text in _tracked_text_files()
                 for i, line in enumerate(text.splitlines()) if OUTSIDE.search(line)]
    assert not offenders, offenders[:20]


def test_cited_sections_exist_in_the_maths_document():
    maths = (ROOT / "docs" / "maths.md").read_text()
    sections = set(re.findall(r"^## (\d+)\.", maths, flags=re.M))
    subsections = set(re.findall(r"^\(([a-z])\)", maths, flags=re.M))
    cited = set()
    for _, text in _tracked_text_files():
        cited |= set(re.findall(r"docs/maths\.md §(\d+)(?:\(([a-z])\))?", text))
    assert cited, "nothing cites docs/maths.md"
    for number, letter in cited:
        assert number in sections, number
        assert not letter or letter in subsections, (number, letter)
