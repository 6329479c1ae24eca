# Data and training: one job per (experiment, depth), all seeds inside the job. The job also
# writes the per-layer table of its networks (results/weights/): a second job per depth
# would cost more to start (Python, torch, pandas) than the table itself. The trained weights
# are stored once, in the training output, which every later stage reads.


# Downloads run where Snakemake runs, never on a compute node (which often has no internet):
# each writes the files of one downloading dataset into its folder, verified by checksum. A
# shell command, not a script: Snakemake reruns a script's jobs when the script is newer than
# their outputs, which would fetch again (and first delete) files put in the folder by hand.
localrules:
    download_mnist,
    download_cifar10,


rule download_mnist:
    output:
        [f"{{folder}}/{name}" for name in download_names("mnist")],
    log:
        "logs/download/mnist{folder}.log",
    wildcard_constraints:
        folder=download_folders("mnist"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    params:
        spec=download_spec,
    shell:
        "python -m resnet_scaling.training.fetch {params.spec:q} > {log} 2>&1"


rule download_cifar10:
    output:
        [f"{{folder}}/{name}" for name in download_names("cifar10")],
    log:
        "logs/download/cifar10{folder}.log",
    wildcard_constraints:
        folder=download_folders("cifar10"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        spec=download_spec,
    shell:
        "python -m resnet_scaling.training.fetch {params.spec:q} > {log} 2>&1"


rule data:
    input:
        dataset_sources,
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
        gpu=train_gpus,
        slurm_partition=lambda wildcards: cluster_partition(train_gpus(wildcards)),
    params:
        experiment=lambda wildcards: experiment(wildcards.exp),
        seed=config["seed"],
        device=train_device,
        dtype=config.get("dtype", "float32"),
        engine=config["engine"],
        checkpoint="results/checkpoints/{exp}/depth_{depth}.pt",
    script:
        "../scripts/train.py"
