# Exploration notebooks executed by the workflow: each run leaves an executed copy
# under logs/notebooks/ and writes its table under results/notebooks/.


localrules:
    notebook_overview,


NOTEBOOK_OUTPUTS = ["results/notebooks/overview.csv"]


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
