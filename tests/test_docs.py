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


# -- the README is a front page; the detail lives in docs/ -------------------------------------

import csv

import yaml

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MINUS = "\u2212"


def _num(x: float, digits: int, plus: bool = False) -> str:
    """A number as the documents write it: a true minus sign, a plus sign only where asked."""
    sign = MINUS if round(x, digits) < 0 else ("+" if plus else "")
    return sign + f"{abs(x):.{digits}f}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path):
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", path.read_text(), flags=re.M)}


def test_the_readme_is_a_front_page_with_the_commands_first():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; detail belongs in docs/"
    head = "\n".join(lines[:40])
    assert "make run" in head and "make test" in head and "make test-all" in head
    assert "config/smoke.yaml" in README.read_text() and "resnet-scaling analyse" in README.read_text()


def test_the_readme_has_the_generated_findings_block():
    from resnet_scaling import findings

    text = README.read_text()
    assert text.count(findings.README_BEGIN) == 1 and text.count(findings.README_END) == 1
    assert text.index(findings.README_BEGIN) < text.index(findings.README_END)


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = []
    for doc in [README, *DOCS]:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            if not resolved.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_states_the_requirements():
    text = README.read_text()
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert f"torch=={pins['torch']}" in text, "the README must state requirements.txt's torch pin"
    assert "ninja" in pins and "`ninja`" in text and "C++ compiler" in text
    assert "Python 3.11" in text


def test_the_test_tiers_cost_as_the_makefile_says():
    makefile = (ROOT / "Makefile").read_text()
    readme = README.read_text()
    for target, minutes in (("make test ", re.search(r"make test  - .*?about (\d+) minutes", makefile, re.S)),
                            ("make test-all", re.search(r"make test-all - .*?about (\d+) minutes", makefile, re.S))):
        line = next(line for line in readme.splitlines() if line.startswith(target))
        assert f"about {minutes.group(1)} min" in line, (line, minutes.group(1))


def _cost_rows(gallery):
    with open(ROOT / gallery / "cost.csv") as f:
        return {row["rule"]: row for row in csv.DictReader(f)}


def _costs_row(marker):
    """The row of docs/costs.md's table that names ``marker``."""
    rows = [line for line in (ROOT / "docs" / "costs.md").read_text().splitlines()
            if line.startswith("|") and marker in line]
    assert len(rows) == 1, (marker, rows)
    return rows[0]


def test_the_quoted_costs_are_those_of_the_committed_cost_tables():
    # the default run is quoted only by pointing at its table, which is re-measured with the gallery
    default = _costs_row("`make run`").split("|")[3]
    assert "figures/cost.md" in default and not re.search(r"\d+ (CPU|min|jobs|GB)", default), default
    # the phase diagram: its two rules in figures/cost.csv
    rows = _cost_rows("figures")
    phase = round(sum(float(rows[r]["cpu_s"]) for r in ("regimes_train", "regimes_classify")) / 60)
    assert f"{phase} CPU-minutes" in _costs_row("`make phase-diagram`")
    # real MNIST: every rule of figures/mnist/cost.csv
    rows = _cost_rows("figures/mnist")
    row = _costs_row("figures/mnist/cost.md")
    assert f"{sum(int(r['jobs']) for r in rows.values())} jobs" in row
    assert f"{round(sum(float(r['cpu_s']) for r in rows.values()) / 60)} CPU-minutes" in row
    assert f"training {round(float(rows['train']['cpu_s']) / 60)} ({rows['train']['jobs']} jobs)" in row
    assert f"{max(float(r['max_rss_mb']) for r in rows.values()) / 1000:.1f} GB" in row
    # the paper-scale synthetic run: training, then every other rule
    rows = _cost_rows("figures/paper")
    row = _costs_row("figures/paper/cost.md")
    train = rows.pop("train")
    assert (f"training {train['jobs']} jobs, {round(float(train['cpu_s']) / 60)} CPU-minutes, "
            f"peak {float(train['max_rss_mb']) / 1000:.1f} GB") in row
    assert (f"analysis {round(sum(float(r['cpu_s']) for r in rows.values()) / 60)} CPU-minutes, "
            f"peak {max(float(r['max_rss_mb']) for r in rows.values()) / 1000:.1f} GB") in row


def _results_text():
    """docs/results.md with its line breaks as spaces, as a reader sees it."""
    return " ".join((ROOT / "docs" / "results.md").read_text().split())


def test_the_quoted_anchor_slopes_are_those_of_the_committed_table():
    results = _results_text()
    with open(ROOT / "figures" / "regimes_anchor_slopes.csv") as f:
        table = {(r["experiment"], r["stage"], r["weights"], r["statistic"]): r for r in csv.DictReader(f)}
    quoted = [("anchor-paper-tied", "trained", "V", False), ("anchor-paper-tied", "trained", "W", False),
              ("anchor-tanh_lr_half_L-smooth", "trained", "Z", False),
              ("anchor-tanh_lr_half_L-smooth", "update", "Z", False),
              ("anchor-tanh_lr_half_L-iid", "trained", "Z", True)]
    for experiment, stage, weights, plus in quoted:
        r = table[(experiment, stage, weights, "max_increment")]
        slope, low, high = (_num(float(r[k]), 3, plus) for k in ("slope", "slope_ci_low", "slope_ci_high"))
        assert f"{slope} [{low}, {high}]" in results, (experiment, stage, weights, slope, low, high)


def test_the_quoted_phase_diagram_slopes_are_those_of_the_committed_table():
    results = _results_text()
    with open(ROOT / "figures" / "training_phase_diagram.csv") as f:
        cells = {r["cell"]: r for r in csv.DictReader(f)}
    quoted = {"tanh-smooth-inv_L-adam": "increment_ratio", "tanh-smooth-inv_L-sgd_lr_L": "increment_ratio",
              "tanh-iid-inv_L-adam": "increment_ratio", "relu-smooth-inv_L-sgd_lr_L": "increment_ratio",
              "tanh-brownian-inv_L-adam": "increment_ratio", "tanh-brownian-inv_L-sgd_lr_L": "increment_ratio",
              "tanh-iid-trained-adam": "exponent"}
    for cell, quantity in quoted.items():
        r = cells[cell]
        key = "increment_ratio_slope" if quantity == "increment_ratio" else "exponent"
        low, high = (f"{quantity}_ci_low", f"{quantity}_ci_high")
        text = f"{_num(float(r[key]), 2)} [{_num(float(r[low]), 2)}, {_num(float(r[high]), 2)}]"
        assert text in results, (cell, text)


def test_the_quoted_depth_grids_are_those_of_the_default_config():
    from resnet_scaling.config import depth_grid

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    results = _results_text()
    min_depth = config["scaling"]["fit"]["min_depth"]
    for name, phrase in (("tanh_shared_synthetic", "{n} depths {lo}…{hi}, 4 seeds; the fits use the {m} depths {flo}…{hi}"),
                         ("tanh_diffusive_synthetic", "trains {n} depths {lo}…{hi} × 4 seeds, all converged; its fits use the {m}\ndepths {flo}…{hi}")):
        depths = depth_grid(config["experiments"][name]["depths"])
        fitted = [d for d in depths if d >= min_depth]
        expected = phrase.format(n=len(depths), lo=depths[0], hi=depths[-1], m=len(fitted), flo=fitted[0])
        assert " ".join(expected.split()) in results, expected
