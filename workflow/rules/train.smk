# Data and training: one job per (experiment, depth), all seeds inside the job. The job also
# writes the per-layer table of its networks (results/weights/): a second job per depth
# would cost more to start (Python, torch, pandas) than the table itself. The trained weights
# are stored once, in the training output, which every later stage reads.


rule data:
    output:
        "results/data/{dataset}.npz",
    log:
        "logs/data/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
        seed=config["seed"],
    script:
        "../scripts/make_dataset.py"


rule train:
    input:
        dataset_of,
    output:
        train="results/train/{exp}/depth_{depth}.npz",
        layers="results/weights/{exp}/depth_{depth}_layers.csv.gz",
    log:
        "logs/train/{exp}/depth_{depth}.log",
    benchmark:
        "benchmarks/output/train/{exp}/depth_{depth}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=0,
    params:
        experiment=lambda wildcards: experiment(wildcards.exp),
        seed=config["seed"],
        device=config.get("device", "auto"),
        dtype=config.get("dtype", "float32"),
        engine=config["engine"],
        checkpoint="results/checkpoints/{exp}/depth_{depth}.pt",
    script:
        "../scripts/train.py"
