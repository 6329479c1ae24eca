# Learning-rate transfer study (docs/maths.md §9): which residual scaling lets the optimal
# learning rate transfer across depth, and which limit the trained weights then have. Every cell
# (parametrisation x block x dataset) trains all depths and base learning rates of the study in
# one job (the trainer of train.smk, a fixed step budget); the analysis finds η*(L) with its seed
# bootstrap and the slope of log η* on log L, the depth coordinate check, and at η* the regime
# (scaling stage) and the pathwise limit (limits stage) of the one-matrix networks. Opt-in: the
# target `transfer` (make transfer) or transfer.enabled: true. Settings: the `transfer` section,
# with the `scaling` fits and `limits.pathwise` rule.

from dataclasses import asdict as _asdict

from resnet_scaling.transfer.study import cell_folders as _transfer_folders
from resnet_scaling.transfer.study import runtime_minutes as _transfer_runtime
from resnet_scaling.transfer.study import workflow_cells as _transfer_cells

# A config whose datasets the study cannot use is refused only when the study is asked for.
TRANSFER_CELLS, TRANSFER_PROBLEM = _transfer_cells(
    config["transfer"], config["datasets"]
)
TRANSFER_TABLES = (
    "runs",
    "optimum",
    "transfer",
    "coord_check",
    "coord_slopes",
    "exponents",
    "pathwise",
    "cost",
)
TRANSFER_FIGURES = ("transfer_loss_lr", "transfer_eta_star", "transfer_coord_check")
TRANSFER_OUTPUTS = [
    *[f"results/transfer/{name}.csv" for name in TRANSFER_TABLES],
    "results/transfer/cost.txt",
    *[f"figures/{name}.{ext}" for name in TRANSFER_FIGURES for ext in ("pdf", "png")],
]


localrules:
    transfer,
    transfer_figures,


rule transfer_train:
    input:
        data=lambda w: f"results/data/{TRANSFER_CELLS[w.cell].dataset}.npz",
    output:
        directory("results/transfer/train/{cell}"),
    log:
        "logs/transfer/train/{cell}.log",
    benchmark:
        "benchmarks/output/transfer/train/{cell}.tsv"
    wildcard_constraints:
        cell="|".join(TRANSFER_CELLS) or "no-transfer-cell",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda w, attempt: _transfer_runtime(
            TRANSFER_CELLS[w.cell], config["datasets"], attempt
        ),
        gpu=0,
    params:
        cell=lambda w: _asdict(TRANSFER_CELLS[w.cell]),
        seed=config["seed"],
        dtype=config["dtype"],
        engine=config["engine"],
    script:
        "../scripts/transfer_train.py"


rule transfer_analyse:
    input:
        cells=lambda w: _transfer_folders(TRANSFER_CELLS, TRANSFER_PROBLEM),
        data=lambda wildcards: sorted(
            {f"results/data/{c.dataset}.npz" for c in TRANSFER_CELLS.values()}
        ),
    output:
        **{
            name: ensure(f"results/transfer/{name}.csv", non_empty=True)
            for name in TRANSFER_TABLES
        },
        cost_line="results/transfer/cost.txt",
    log:
        "logs/transfer/analyse.log",
    benchmark:
        "benchmarks/output/transfer/analyse.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        cells={name: _asdict(cell) for name, cell in TRANSFER_CELLS.items()},
        transfer=config["transfer"],
        scaling=config["scaling"],
        limits=config["limits"],
    script:
        "../scripts/transfer_analyse.py"


rule transfer_figures:
    input:
        runs="results/transfer/runs.csv",
        optimum="results/transfer/optimum.csv",
        transfer="results/transfer/transfer.csv",
        coord_check="results/transfer/coord_check.csv",
        coord_slopes="results/transfer/coord_slopes.csv",
    output:
        transfer_loss_lr_pdf="figures/transfer_loss_lr.pdf",
        transfer_loss_lr_png=report(
            "figures/transfer_loss_lr.png",
            caption="../report/transfer_loss_lr.rst",
            category="Learning-rate transfer",
        ),
        transfer_eta_star_pdf="figures/transfer_eta_star.pdf",
        transfer_eta_star_png=report(
            "figures/transfer_eta_star.png",
            caption="../report/transfer_eta_star.rst",
            category="Learning-rate transfer",
        ),
        transfer_coord_check_pdf="figures/transfer_coord_check.pdf",
        transfer_coord_check_png=report(
            "figures/transfer_coord_check.png",
            caption="../report/transfer_coord_check.rst",
            category="Learning-rate transfer",
        ),
    log:
        "logs/transfer/figures.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seeds=config["transfer"]["seeds"],
    script:
        "../scripts/transfer_figures.py"


rule transfer:
    input:
        TRANSFER_OUTPUTS,
