# Training-side phase diagram (docs/maths.md §8): which training choices put the trained
# weights in the ODE, SDE or neither regime. Every cell (activation x initialisation along
# depth x residual scale x optimiser) trains at all depths of the study in one job, and is
# classified by the statistics, exponents and regime rule of the scaling stage; the anchor
# repeats Marion et al. (2024, Fig. 1) with the two-matrix block. Opt-in: the target
# `phase_diagram` (or regimes.enabled: true). Settings: the `regimes` section of the config,
# with the fits of the `scaling` section.

PHASE_DIAGRAM = config["regimes"]
PHASE_DIAGRAM_CELLS = phase_diagram_cells()
PHASE_DIAGRAM_ANCHORS = phase_diagram_anchor_experiments()
PHASE_DIAGRAM_OUTPUTS = [
    "results/regimes/phase_diagram.csv",
    "results/regimes/exponents.csv",
    "results/regimes/anchor_statistics.csv",
    "results/regimes/anchor_slopes.csv",
    *[
        f"figures/{name}.{ext}"
        for name in ("training_phase_diagram", "regimes_anchor")
        for ext in ("pdf", "png")
    ],
]


localrules:
    phase_diagram,
    phase_diagram_figures,


rule phase_diagram_train:
    output:
        directory("results/regimes/train/{cell}"),
    log:
        "logs/regimes/train/{cell}.log",
    benchmark:
        "benchmarks/output/regimes/train/{cell}.tsv"
    wildcard_constraints:
        cell="|".join(list(PHASE_DIAGRAM_CELLS) + list(PHASE_DIAGRAM_ANCHORS)),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=phase_diagram_train_mem_mb,
        runtime=phase_diagram_train_runtime,
        gpu=0,
    params:
        experiment=phase_diagram_experiment,
        dataset=phase_diagram_dataset,
        checkpoints="results/checkpoints/regimes/{cell}",
        seed=config["seed"],
        device=config.get("device", "auto"),
        dtype=config.get("dtype", "float32"),
        engine=config["engine"],
    script:
        "../scripts/phase_diagram_train.py"


rule phase_diagram_classify:
    input:
        expand("results/regimes/train/{cell}", cell=PHASE_DIAGRAM_CELLS),
    output:
        regimes=ensure("results/regimes/phase_diagram.csv", non_empty=True),
        exponents="results/regimes/exponents.csv",
    log:
        "logs/regimes/classify.log",
    benchmark:
        "benchmarks/output/regimes/classify.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        cells=PHASE_DIAGRAM_CELLS,
        fit=config["scaling"]["fit"],
        bootstrap=config["scaling"]["bootstrap"],
        include_status=PHASE_DIAGRAM["include_status"],
        regime=config["scaling"]["regime"],
        detrend_window=config["scaling"]["detrend_window"],
    script:
        "../scripts/phase_diagram_classify.py"


rule phase_diagram_anchor:
    input:
        expand("results/regimes/train/{cell}", cell=PHASE_DIAGRAM_ANCHORS),
    output:
        statistics="results/regimes/anchor_statistics.csv",
        slopes=ensure("results/regimes/anchor_slopes.csv", non_empty=True),
    log:
        "logs/regimes/anchor.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        anchors=phase_diagram_anchor_labels(),
        fit=config["scaling"]["fit"],
        bootstrap=config["scaling"]["bootstrap"],
        include_status=PHASE_DIAGRAM["include_status"],
    script:
        "../scripts/phase_diagram_anchor.py"


rule phase_diagram_figures:
    input:
        regimes="results/regimes/phase_diagram.csv",
        anchor="results/regimes/anchor_statistics.csv",
        slopes="results/regimes/anchor_slopes.csv",
    output:
        diagram_pdf="figures/training_phase_diagram.pdf",
        diagram=report(
            "figures/training_phase_diagram.png",
            caption="../report/training_phase_diagram.rst",
            category="Training-side phase diagram",
        ),
        anchor_pdf="figures/regimes_anchor.pdf",
        anchor=report(
            "figures/regimes_anchor.png",
            caption="../report/regimes_anchor.rst",
            category="Training-side phase diagram",
        ),
    log:
        "logs/regimes/figures.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/phase_diagram_figures.py"


rule phase_diagram:
    input:
        PHASE_DIAGRAM_OUTPUTS,
