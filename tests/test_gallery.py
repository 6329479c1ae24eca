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
    written = export_gallery(smoke_run, tmp_path / "gallery", tmp_path / "time.txt")
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
