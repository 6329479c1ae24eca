# Networks at initialisation (docs/maths.md §6): no training. Diffusion limits in law of the
# shallow block and of its Jacobian, the exact GBM law in d = 1, input correlation against
# depth, Marion et al.'s relative change and its exact identity, the β × Hurst phase
# diagram with fGn weights, and the doubly infinite kernel ODE. Each part writes tidy CSVs
# under results/init/; figures read only those; the note compares everything with theory.
# Settings: the `init_limits` section of the config; schema validation (common.smk) fills
# in every default from src/resnet_scaling/config.schema.yaml.

INIT = config["init_limits"]
INIT_FIGURES = [
    "diffusion_law",
    "gradient_law",
    "gbm",
    "correlation",
    "relative_change",
    "phase_diagram",
    "kernels",
]


INIT_LIMITS_OUTPUTS = (
    [
        "results/init/note.md",
        "results/init/summary.json",
        *[
            f"figures/init_{name}.{ext}"
            for name in INIT_FIGURES
            for ext in ("pdf", "png")
        ],
    ]
    if INIT["enabled"]
    else []
)


localrules:
    init_figures,
    init_note,


# -- simulations: one module each in src/resnet_scaling/init_limits/ -----------------------


rule init_diffusion:
    output:
        w1=ensure("results/init/diffusion_w1.csv", non_empty=True),
        quantiles="results/init/diffusion_quantiles.csv",
    log:
        "logs/init/diffusion.log",
    benchmark:
        "benchmarks/output/init/diffusion.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        cfg=INIT["diffusion"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_diffusion.py"


rule init_gbm:
    output:
        moments=ensure("results/init/gbm_moments.csv", non_empty=True),
        density="results/init/gbm_density.csv",
    log:
        "logs/init/gbm.log",
    benchmark:
        "benchmarks/output/init/gbm.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=INIT["gbm"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_gbm.py"


rule init_correlation:
    output:
        ensure("results/init/correlation.csv", non_empty=True),
    log:
        "logs/init/correlation.log",
    benchmark:
        "benchmarks/output/init/correlation.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        cfg=INIT["correlation"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_correlation.py"


rule init_relative_change:
    output:
        ensure("results/init/relative_change.csv", non_empty=True),
    log:
        "logs/init/relative_change.log",
    benchmark:
        "benchmarks/output/init/relative_change.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        cfg=INIT["relative_change"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_relative_change.py"


rule init_phase_diagram:
    output:
        paths=ensure("results/init/phase_paths.csv", non_empty=True),
        cells=ensure("results/init/phase_cells.csv", non_empty=True),
        line=ensure("results/init/critical_line.csv", non_empty=True),
    log:
        "logs/init/phase_diagram.log",
    benchmark:
        "benchmarks/output/init/phase_diagram.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        # fGn weights of the deepest network: depth × 2 d² × paths float64, plus FFT work space
        mem_mb=lambda wildcards: int(
            1000
            + 6
            * max(INIT["phase_diagram"]["depths"])
            * 2
            * INIT["phase_diagram"]["dim"] ** 2
            * INIT["phase_diagram"]["paths"]
            * 8
            / 1e6
        ),
        runtime=30,
    params:
        cfg=INIT["phase_diagram"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_phase_diagram.py"


rule init_kernels:
    output:
        errors=ensure("results/init/kernel_errors.csv", non_empty=True),
        paths=ensure("results/init/kernel_paths.csv", non_empty=True),
    log:
        "logs/init/kernels.log",
    benchmark:
        "benchmarks/output/init/kernels.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        cfg=INIT["kernels"],
        seed=config["seed"],
    script:
        "../scripts/init_limits_kernels.py"


rule init_note:
    input:
        w1="results/init/diffusion_w1.csv",
        gbm="results/init/gbm_moments.csv",
        correlation="results/init/correlation.csv",
        relative_change="results/init/relative_change.csv",
        line="results/init/critical_line.csv",
        kernel_errors="results/init/kernel_errors.csv",
        kernel_paths="results/init/kernel_paths.csv",
    output:
        note=report(
            "results/init/note.md",
            caption="../report/init_note.rst",
            category="Initialisation",
        ),
        summary="results/init/summary.json",
    log:
        "logs/init/note.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        slope_tolerance=INIT["slope_tolerance"],
    script:
        "../scripts/init_limits_note.py"


# -- figures: one function each in src/resnet_scaling/plots/init.py, drawn in one job ---


rule init_figures:
    input:
        w1="results/init/diffusion_w1.csv",
        quantiles="results/init/diffusion_quantiles.csv",
        gbm_moments="results/init/gbm_moments.csv",
        gbm_density="results/init/gbm_density.csv",
        correlation="results/init/correlation.csv",
        relative_change="results/init/relative_change.csv",
        phase_cells="results/init/phase_cells.csv",
        critical_line="results/init/critical_line.csv",
        kernel_errors="results/init/kernel_errors.csv",
        kernel_paths="results/init/kernel_paths.csv",
    output:
        diffusion_law=report(
            "figures/init_diffusion_law.png",
            caption="../report/init_diffusion_law.rst",
            category="Initialisation",
            subcategory="Diffusion limits",
        ),
        gradient_law=report(
            "figures/init_gradient_law.png",
            caption="../report/init_gradient_law.rst",
            category="Initialisation",
            subcategory="Diffusion limits",
        ),
        gbm=report(
            "figures/init_gbm.png",
            caption="../report/init_gbm.rst",
            category="Initialisation",
            subcategory="Diffusion limits",
        ),
        correlation=report(
            "figures/init_correlation.png",
            caption="../report/init_correlation.rst",
            category="Initialisation",
            subcategory="Input dependence",
        ),
        relative_change=report(
            "figures/init_relative_change.png",
            caption="../report/init_relative_change.rst",
            category="Initialisation",
            subcategory="Relative change",
        ),
        phase_diagram=report(
            "figures/init_phase_diagram.png",
            caption="../report/init_phase_diagram.rst",
            category="Initialisation",
            subcategory="Relative change",
        ),
        kernels=report(
            "figures/init_kernels.png",
            caption="../report/init_kernels.rst",
            category="Initialisation",
            subcategory="Doubly infinite limit",
        ),
        pdfs=[f"figures/init_{name}.pdf" for name in INIT_FIGURES],
    log:
        "logs/init/figures.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/init_limits_figures.py"
