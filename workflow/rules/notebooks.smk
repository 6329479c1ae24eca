# Notebooks executed by the workflow, one per stage family: each run leaves an executed
# copy under logs/notebooks/ and writes its table under results/notebooks/.


localrules:
    notebook_overview,
    notebook_scaling,
    notebook_limits_backprop,
    notebook_initialisation,
    notebook_paper_scale,


# The committed paper-scale gallery of the repository (read, never written): its notebook runs
# in every run of a checkout that has it.
PAPER_GALLERY = ROOT / "figures" / "paper"

NOTEBOOK_OUTPUTS = [
    "results/notebooks/overview.csv",
    "results/notebooks/scaling.csv",
    "results/notebooks/limits_backprop.csv",
    *(
        ["results/notebooks/initialisation.csv"]
        if config["init_limits"]["enabled"]
        else []
    ),
    *(
        ["results/notebooks/paper_scale.csv"]
        if (PAPER_GALLERY / "exponents.csv").exists()
        else []
    ),
]


rule notebook_overview:
    input:
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
        limits="results/limits/summary.csv",
    output:
        table="results/notebooks/overview.csv",
    log:
        notebook="logs/notebooks/overview.ipynb",
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    notebook:
        "../../notebooks/overview.py.ipynb"


rule notebook_scaling:
    input:
        exponents="results/exponents.csv",
        regimes="results/regimes.csv",
        robustness="results/scaling_robustness.csv",
    output:
        table="results/notebooks/scaling.csv",
    log:
        notebook="logs/notebooks/scaling.ipynb",
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    notebook:
        "../../notebooks/scaling.py.ipynb"


rule notebook_limits_backprop:
    input:
        limits_fits="results/limits/convergence_fits.csv",
        fbsde_slopes="results/fbsde/convergence_slopes.csv",
        limits_summary="results/limits/summary.csv",
    output:
        table="results/notebooks/limits_backprop.csv",
    log:
        notebook="logs/notebooks/limits_backprop.ipynb",
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    notebook:
        "../../notebooks/limits_backprop.py.ipynb"


rule notebook_initialisation:
    input:
        summary="results/init/summary.json",
    output:
        table="results/notebooks/initialisation.csv",
    log:
        notebook="logs/notebooks/initialisation.ipynb",
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    notebook:
        "../../notebooks/initialisation.py.ipynb"


rule notebook_paper_scale:
    input:
        exponents=str(PAPER_GALLERY / "exponents.csv"),
        regimes=str(PAPER_GALLERY / "regimes.csv"),
        robustness=str(PAPER_GALLERY / "scaling_robustness.csv"),
        training=str(PAPER_GALLERY / "training.csv"),
        cost=str(PAPER_GALLERY / "cost.csv"),
    output:
        table="results/notebooks/paper_scale.csv",
    log:
        notebook="logs/notebooks/paper_scale.ipynb",
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    notebook:
        "../../notebooks/paper_scale.py.ipynb"
