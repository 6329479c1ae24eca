"""A gallery of a finished run: figures, small tables and the run's cost."""

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
