"""The findings of a gallery are generated from its tables, and the README quotes them."""

from pathlib import Path

import pandas as pd
import pytest

from resnet_scaling import findings

ROOT = Path(__file__).resolve().parents[1]


def _gallery(tmp_path: Path) -> Path:
    g = tmp_path / "gallery"
    g.mkdir()
    pd.DataFrame([{
        "experiment": "tanh_x", "activation": "tanh", "delta": "shared", "population": "converged", "primary": True,
        "regime": "ODE", "exponent": 0.97, "exponent_ci_low": 0.95, "exponent_ci_high": 0.99,
        "increment_ratio_slope": -1.1, "quadratic_variation_slope": -3.2, "n_depths": 7,
        "sensitivity": "flips: neither with ode_exponent_tol 0.15"}]).to_csv(g / "regimes.csv", index=False)
    pd.DataFrame([{"experiment": "tanh_x", "quantity": "A", "statistic": "max_norm", "population": "converged",
                   "exponent": 0.45, "ci_low": 0.43, "ci_high": 0.47}]).to_csv(g / "exponents.csv", index=False)
    pd.DataFrame([
        {"experiment": "tanh_x", "population": "converged", "primary": True, "direction": d, "verdict": "ODE",
         "reason": "r", "quadratic_variation_slope": -0.98, "quadratic_variation_ci_low": -1.02,
         "quadratic_variation_ci_high": -0.94, "coarsening_blocks": 8, "coarsening_slope": 0.01,
         "coarsening_ci_low": -0.05, "coarsening_ci_high": 0.07, "sensitivity": "robust"}
        for d in ("forward", "backward")]).to_csv(g / "limits_pathwise_verdicts.csv", index=False)
    depths = [16, 32, 64, 128]
    pd.DataFrame([{"experiment": "tanh_x", "depth": L, "seed": s, "status": "converged",
                   "non_affine_share": 0.2 * (L / 16) ** -0.9} for L in depths for s in range(2)]).to_csv(
        g / "training.csv", index=False)
    return g


def test_findings_quote_the_tables(tmp_path):
    rows = {r["claim"]: r for r in findings.findings_rows(_gallery(tmp_path))}
    regime = rows["regime of the trained weights (docs/maths.md §3)"]
    assert regime["measured"].startswith("exponent of M 0.97 [+0.95, +0.99]")
    assert regime["verdict"] == "ODE (flips: neither with ode_exponent_tol 0.15)"
    assert rows["β, exponent of A (max norm, as the papers)"]["measured"] == "0.45 [+0.43, +0.47]"
    limit = rows["limit of the hidden state, pathwise (§4)"]
    assert limit["verdict"] == "ODE" and limit["measured"].startswith("QV slope -0.98 [-1.02, -0.94]")
    share = rows["non-affine share of the output"]
    assert share["measured"].startswith("median 8.2 %; slope in L -0.90 [-0.90, -0.90]")
    assert share["measured"].endswith("against −2β = -0.90 (§4(b))")
    assert share["verdict"] == "uses its nonlinearity"


def test_readme_block_replaced_between_markers_and_missing_markers_refused(tmp_path):
    g = _gallery(tmp_path)
    block = findings.readme_block([g])
    text = f"intro\n{findings.README_BEGIN}\nold\n{findings.README_END}\nrest\n"
    new = findings.replace_readme_block(text, block)
    assert new.startswith("intro\n") and new.endswith("\nrest\n") and "| tanh_x | ODE (flips" in new
    with pytest.raises(ValueError, match="no findings block"):
        findings.replace_readme_block("no markers", block)
    assert findings.main([str(tmp_path / "nowhere")]) == 1


def test_the_readme_findings_agree_with_the_committed_galleries():
    """Every number of the README's findings table is the one its gallery's tables give."""
    readme = (ROOT / "README.md").read_text()
    if findings.README_BEGIN not in readme:
        pytest.fail("README.md has no generated findings block")
    start = readme.index(findings.README_BEGIN)
    end = readme.index(findings.README_END) + len(findings.README_END)
    quoted = readme[start:end]
    galleries = [line.split("](")[1].split("/findings.md")[0] for line in quoted.splitlines()
                 if line.startswith("| [")]
    galleries = list(dict.fromkeys(galleries))
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert quoted == findings.readme_block(galleries), (
            "the README's findings differ from the galleries' tables: run "
            f"python -m resnet_scaling.findings {' '.join(galleries)} --readme README.md")
        for gallery in galleries:
            assert (ROOT / gallery / "findings.md").read_text() == findings.findings_markdown(gallery)
    finally:
        os.chdir(cwd)


def test_transfer_findings_quote_transfer_csv(tmp_path):
    g = tmp_path / "transfer"
    g.mkdir()
    pd.DataFrame([
        {"parametrisation": "completep", "block": "one-matrix", "dataset": "nonlinear", "slope": 0.15, "ci_low": 0.13,
         "ci_high": 0.18, "n_depths": 7, "note": "", "transfer": "does not transfer", "regime": "neither",
         "pathwise": "ODE"},
        {"parametrisation": "completep", "block": "two-matrix", "dataset": "nonlinear", "slope": 0.07, "ci_low": 0.04,
         "ci_high": 0.12, "n_depths": 7, "note": "", "transfer": "transfers",
         "regime": "not evaluated: one-matrix only", "pathwise": ""}]).to_csv(g / "transfer.csv", index=False)
    rows = findings.findings_rows(g)
    assert rows[0]["measured"] == "slope of log η* +0.15 [+0.13, +0.18] over 7 depths"
    assert rows[0]["verdict"] == "does not transfer; at η*: regime neither, pathwise ODE"
    assert rows[1]["verdict"] == "transfers"
    assert "| completep (two-matrix, nonlinear) | transfers |" in findings.readme_block([g])


def test_a_bar_inside_a_cell_does_not_split_it():
    """``|δ|A`` (the ReLU / per-layer δ exponent's quantity) stays one cell: six columns a row."""
    import re

    rows = [{"experiment": "relu_multi", "population": "converged", "claim": "β, exponent of |δ|A",
             "measured": "0.5", "verdict": "", "figure": "f.png"}]
    table = findings._markdown(rows)
    for line in table.splitlines():
        assert len(re.findall(r"(?<!\\)\|", line)) == 7, line
    assert "exponent of \\|δ\\|A" in table
