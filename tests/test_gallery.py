"""A gallery of a finished run: figures, small tables and the run's cost."""

import numpy as np
import pandas as pd
import pytest

from resnet_scaling.gallery import export_gallery, time_report

pytestmark = pytest.mark.workflow

TIME_V = """\tCommand being timed: "snakemake --cores 2"
\tUser time (seconds): 100.50
\tSystem time (seconds): 10.25
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03
\tMaximum resident set size (kbytes): 2048000
"""


def test_gallery_of_the_smoke_run(smoke_run, tmp_path):
    (tmp_path / "time.txt").write_text(TIME_V)
    written = export_gallery(smoke_run, tmp_path / "gallery", [tmp_path / "time.txt"])
    names = {p.name for p in written}
    assert {"exponents.csv", "regimes.csv", "scorecard.md", "scaling_robustness.csv", "cost.csv", "cost.md",
            "training.csv"} <= names
    assert len(pd.read_csv(tmp_path / "gallery" / "training.csv")) == 2 * 4 * 2  # experiments x depths x seeds
    assert "scaling_max_norm.png" in names and "scaling_max_norm.pdf" in names
    cost = pd.read_csv(tmp_path / "gallery" / "cost.csv")
    train = cost.set_index("rule").loc["train"]
    assert train["jobs"] == 8 and train["cpu_s"] > 0 and train["max_rss_mb"] > 0
    assert "wall 62.0 min, CPU 1.8 min, peak memory of one process 2000 MB" in (tmp_path / "gallery" / "cost.md").read_text()


def test_time_report_reads_gnu_time(tmp_path):
    (tmp_path / "t.txt").write_text(TIME_V)
    assert time_report(tmp_path / "t.txt") == {"wall_s": 3723.0, "cpu_s": 110.75, "max_rss_mb": 2000.0}


def test_an_unfinished_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no figures"):
        export_gallery(tmp_path, tmp_path / "g")


def test_several_invocations_each_get_their_cost_line(tmp_path):
    """Training and analysis run as two invocations: each GNU time report is summarised under its label."""
    from resnet_scaling.gallery import main

    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "scaling_max_norm.png").write_bytes(b"png")
    bench = run / "benchmarks" / "output" / "train" / "exp"
    bench.mkdir(parents=True)
    (bench / "depth_4.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n2.5\t0:00:02\t300.0\t2.0\n")
    (tmp_path / "train.txt").write_text(TIME_V)
    (tmp_path / "analysis.txt").write_text(TIME_V.replace("1:02:03", "10:00").replace("100.50", "500.00"))
    assert main([str(run), str(tmp_path / "g"), "--time-report", str(tmp_path / "train.txt"), "--time-label", "Training",
                 "--time-report", str(tmp_path / "analysis.txt"), "--time-label", "Analysis"]) == 0
    text = (tmp_path / "g" / "cost.md").read_text()
    assert "| train | 1 | 2 | 2 | 300 |" in text
    assert "Training (GNU time): wall 62.0 min, CPU 1.8 min" in text
    assert "Analysis (GNU time): wall 10.0 min, CPU 8.5 min" in text
    with pytest.raises(ValueError, match="2 time reports but 1 labels"):
        export_gallery(run, tmp_path / "h", [tmp_path / "train.txt", tmp_path / "analysis.txt"], ["Training"])


def _committed_gallery(path):
    """The tables of a gallery written before populations, for one ReLU / per-layer δ experiment
    whose networks split into converged and stopped ones."""
    from resnet_scaling.scaling.tables import expected_pairs

    path.mkdir()
    depths = [16, 32, 64, 128]
    training = [{"experiment": "relu_dig", "depth": L, "seed": s, "status": "converged" if s < 2 else "stopped",
                 "epochs": 10, "stop_reason": "", "train_loss": 1e-3} for L in depths for s in range(3)]
    pd.DataFrame(training).to_csv(path / "training.csv", index=False)
    pd.DataFrame([{"experiment": "relu_dig", "dataset": "digits", "dataset_kind": "digits", "activation": "relu",
                   "delta": "multi", "shuffle": "correct", "quantity": q, "statistic": s, "slope": -0.51,
                   "exponent": 0.51, "ci_low": 0.5, "ci_high": 0.52, "n_depths": 4, "n_seeds": 3, "n_points": 12,
                   "n_excluded": 0, "excluded": ""} for q, s in sorted(expected_pairs("multi"))]
                 ).to_csv(path / "exponents.csv", index=False)
    pd.DataFrame([{"experiment": "relu_dig", "dataset": "digits", "dataset_kind": "digits", "activation": "relu",
                   "delta": "multi", "shuffle": "correct", "regime": "neither", "support": 1.0, "quantity": "M",
                   "exponent_statistic": "rms_norm", "exponent": 0.83, "exponent_ci_low": 0.82, "exponent_ci_high": 0.84,
                   "increment_ratio_slope": -0.02, "increment_ratio_ci_low": -0.03, "increment_ratio_ci_high": -0.01,
                   "quadratic_variation_slope": -0.63, "quadratic_variation_ci_low": -0.65,
                   "quadratic_variation_ci_high": -0.62, "n_depths": 4, "n_seeds": 3, "rule": "the rule",
                   "n_usable": 12, "n_excluded": 0, "excluded": "", "note": ""}]).to_csv(path / "regimes.csv", index=False)
    rows = [{"experiment": "relu_dig", "quantity": "M_abs", "primary": True, "statistic": "max_norm",
             "analysis": "window", "variant": "depths 16..64", "depth_low": 16, "depth_high": 64, "depth_centre": 32.0,
             "exponent": 0.55, "ci_low": 0.5, "ci_high": 0.6, "n_depths": 3, "n_networks": 9}]
    rows += [{"experiment": "relu_dig", "quantity": "M_abs", "primary": True, "statistic": "max_norm",
              "analysis": "inclusion", "variant": v, "depth_low": 16, "depth_high": 128, "depth_centre": 45.0,
              "exponent": e, "ci_low": e - 0.01, "ci_high": e + 0.01, "n_depths": 4, "n_networks": n}
             for v, e, n in (("converged only", 0.49, 8), ("+ stopped on the plateau", 0.51, 12),
                             ("+ out of epochs", 0.51, 12))]
    pd.DataFrame(rows).to_csv(path / "scaling_robustness.csv", index=False)
    pd.DataFrame([{"experiment": "relu_dig", "regime": "neither", "depths": "[64, 128]",
                   "mean_field_relative_error_by_depth": '{"64": 0.08, "128": 0.07}'}]).to_csv(
        path / "limits_summary.csv", index=False)


def test_carried_experiments_keep_their_committed_fits_and_say_what_is_missing(tmp_path):
    from resnet_scaling.gallery import carried_tables
    from resnet_scaling.scaling.scorecard import score

    _committed_gallery(tmp_path / "g")
    carried = carried_tables(tmp_path / "g", ["relu_dig"], ("converged", "stopped"), ("converged",), 3, (16, 1e9))
    regimes = carried["regimes"].set_index("population")
    assert list(carried["regimes"]["population"]) == ["converged", "converged+stopped"]  # primary first
    assert regimes.loc["converged", "regime"] == "not evaluated" and regimes.loc["converged", "primary"]
    assert regimes.loc["converged+stopped", "regime"] == "neither" and not regimes.loc["converged+stopped", "primary"]
    assert regimes.loc["converged", "members"] == "converged:8"
    exps = carried["exponents"]
    mine = exps[(exps["population"] == "converged") & (exps["quantity"] == "M_abs")].set_index("statistic")
    assert mine.loc["max_norm", "exponent"] == 0.49 and np.isnan(mine.loc["quadratic_variation", "exponent"])
    assert carried["limits"]["relu_dig"]["mean_field_relative_error_by_depth"] == {"64": 0.08, "128": 0.07}
    scores = score(exps, carried["regimes"], robustness=carried["robustness"],
                   limits=carried["limits"]).set_index("reference")
    beta = scores.loc["relu-multi-mnist-beta"]
    assert beta["ours"] == "0.49" and beta["population"] == "converged (8 converged)"
    assert beta["windows"] == "n/a (no window fits)"  # the committed windows are the original rule's
    assert beta["original_rule"].startswith("converged+stopped (8 converged, 4 stopped): 0.51 [0.50, 0.52]")
    regime = scores.loc["relu-multi-regime"]
    assert regime["verdict"].startswith("not evaluated: the converged networks' regime needs their per-network")
    assert "neither" in regime["original_rule"]
