# Training steps: shared initial weights per seed, one training job per (framework, seed), then
# its evaluation on the test set. `params:` lists exactly the keys a step reads, like the
# `params:` of the DVC stage of the same name; each shell line equals that stage's `cmd`.
from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.train.devices import uses_gpu

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
    run=r"[a-z_]+",


rule init:
    input:
        script="workflow/scripts/init.py",
        code=CODE["init"],
    output:
        weights=layout.INIT,
    log:
        "logs/init/seed{seed}.log",
    params:
        **params_of("init"),
    shell:
        "python {input.script} --seed {wildcards.seed} --out {output.weights} --log {log}"


rule train:
    input:
        data=PREPARED,
        init=layout.INIT,
        script="workflow/scripts/train.py",
        code=CODE["train"],
        backend=backend_code,
    output:
        model_dir=directory(layout.MODEL_DIR),
        history=layout.RUN["history"],
        run_record=layout.RUN["run"],
        # Each epoch's metrics as it ends, in DVCLive's format (docs/live-metrics.md). Rebuilt
        # from the checkpoint when a job resumes, so Snakemake deleting it after a failure is fine.
        live=directory(layout.RUN["live"]),
    log:
        "logs/train/{framework}/seed{seed}.log",
    # Wall time, CPU time and peak memory of the whole job, as Snakemake sees it.
    benchmark:
        "logs/benchmarks/train/{framework}/seed{seed}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        **params_of("train"),
        # Not an output: Snakemake deletes a failed job's outputs, and the checkpoint must survive.
        checkpoint_dir=layout.CHECKPOINT_DIR,
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --data {input.data} --init {input.init} --model-dir {output.model_dir} --history {output.history} --run-record {output.run_record} --checkpoint-dir {params.checkpoint_dir} --live-dir {output.live} --log {log}"


rule evaluate:
    input:
        data=PREPARED,
        model_dir=layout.MODEL_DIR,
        run_record=layout.RUN["run"],
        script="workflow/scripts/evaluate.py",
        code=CODE["evaluate"],
        backend=backend_code,
    output:
        predictions=layout.PREDICTIONS,
        metrics=layout.RUN["metrics"],
    log:
        "logs/evaluate/{framework}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{framework}/seed{seed}.tsv"
    threads: JOB_THREADS
    params:
        **params_of("evaluate"),
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --data {input.data} --model-dir {input.model_dir} --run-record {input.run_record} --predictions {output.predictions} --metrics {output.metrics} --log {log}"
