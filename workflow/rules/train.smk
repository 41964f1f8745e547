# Training steps: shared initial weights per seed, one training job per (framework, seed), then
# its evaluation on the test set. `params:` lists exactly the keys a step reads, like the
# `params:` of the DVC stage of the same name; each shell line equals that stage's `cmd`.
from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.train.devices import uses_gpu

METRICS = expand(
    "reports/runs/{framework}/seed{seed}/metrics.json",
    framework=config["frameworks"],
    seed=config["seeds"],
)
# 1 when training jobs will run on a GPU, so `--resources gpu=N` caps concurrent GPU jobs.
# Decided once, at parse time, by lenet_compare.train.devices (no framework import).
TRAIN_GPUS = int(uses_gpu(config["train"]["device"]))
# Each training and evaluation job runs train.threads threads, set inside the step for both
# frameworks (DVC runs the same command line, so the same threads), and Snakemake schedules by
# them: `--cores 8` with train.threads 2 runs four jobs side by side.
JOB_THREADS = config["train"]["threads"]


wildcard_constraints:
    framework="|".join(FRAMEWORKS),
    seed=r"\d+",


rule init:
    input:
        script="workflow/scripts/init.py",
        code=[
            "src/lenet_compare/train/init_weights.py",
            "src/lenet_compare/core/spec.py",
        ],
    output:
        weights="data/init/seed{seed}.npz",
    log:
        "logs/init/seed{seed}.log",
    params:
        model=config["model"],
    shell:
        "python {input.script} --seed {wildcards.seed} --out {output.weights} --log {log}"


rule train:
    input:
        data=PREPARED,
        init="data/init/seed{seed}.npz",
        script="workflow/scripts/train.py",
        code=[
            "src/lenet_compare/train/{framework}_backend.py",
            "src/lenet_compare/train/job.py",
            "src/lenet_compare/train/loop.py",
            "src/lenet_compare/train/live.py",
            "src/lenet_compare/train/checkpoints.py",
            "src/lenet_compare/train/divergence.py",
            "src/lenet_compare/train/scores.py",
            "src/lenet_compare/train/minibatches.py",
            "src/lenet_compare/train/init_weights.py",
            "src/lenet_compare/train/history.py",
            "src/lenet_compare/core/spec.py",
            "src/lenet_compare/data/dataset.py",
        ],
    output:
        model_dir=directory("data/models/{framework}/seed{seed}"),
        history="reports/runs/{framework}/seed{seed}/history.csv",
        run_record="reports/runs/{framework}/seed{seed}/run.json",
        # Each epoch's metrics as it ends, in DVCLive's format (docs/live-metrics.md). Rebuilt
        # from the checkpoint when a job resumes, so Snakemake deleting it after a failure is fine.
        live=directory("reports/runs/{framework}/seed{seed}/live"),
    log:
        "logs/train/{framework}/seed{seed}.log",
    # Wall time, CPU time and peak memory of the whole job, as Snakemake sees it.
    benchmark:
        "logs/benchmarks/train/{framework}/seed{seed}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        model=config["model"],
        train=config["train"],
        # Not an output: Snakemake deletes a failed job's outputs, and the checkpoint must survive.
        checkpoint_dir="data/checkpoints/{framework}/seed{seed}",
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --data {input.data} --init {input.init} --model-dir {output.model_dir} --history {output.history} --run-record {output.run_record} --checkpoint-dir {params.checkpoint_dir} --live-dir {output.live} --log {log}"


rule evaluate:
    input:
        data=PREPARED,
        model_dir="data/models/{framework}/seed{seed}",
        run_record="reports/runs/{framework}/seed{seed}/run.json",
        script="workflow/scripts/evaluate.py",
        code=[
            "src/lenet_compare/train/{framework}_backend.py",
            "src/lenet_compare/train/scores.py",
            "src/lenet_compare/train/minibatches.py",
            "src/lenet_compare/core/spec.py",
            "src/lenet_compare/evaluate/classification.py",
            "src/lenet_compare/evaluate/inference_timing.py",
            "src/lenet_compare/data/fashion_mnist.py",
            "src/lenet_compare/data/dataset.py",
        ],
    output:
        predictions="data/predictions/{framework}/seed{seed}.npz",
        metrics="reports/runs/{framework}/seed{seed}/metrics.json",
    log:
        "logs/evaluate/{framework}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{framework}/seed{seed}.tsv"
    threads: JOB_THREADS
    params:
        threads=config["train"]["threads"],
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --data {input.data} --model-dir {input.model_dir} --run-record {input.run_record} --predictions {output.predictions} --metrics {output.metrics} --log {log}"
