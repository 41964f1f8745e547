# The article's setup, explained: its setup trained over ablation.seeds, then one factor at a
# time moved to the controlled protocol (lenet_compare.ablation.factors). One job trains one run:
# a (framework, seed, run), the runs being the distinct trainings factors.runs_to_train names for
# each framework of the article's pair. The last step is the main runs (train.smk), so the
# ablation reads their metrics instead of training them again.
# Same command lines as the DVC stages `ablation_train` and `ablation`.


rule ablation_train:
    input:
        data=PREPARED,
        script="workflow/scripts/ablation_train.py",
        code=CODE["ablation_train"],
        backend=backend_code,
    output:
        model_dir=directory(layout.ABLATION_MODEL_DIR),
        record=layout.ABLATION_RUN,
        # The run's epochs as they end, in DVCLive's format (docs/live-metrics.md); rebuilt from
        # the checkpoint when a job resumes.
        live=directory(layout.ABLATION_LIVE),
    log:
        "logs/ablation/{framework}/seed{seed}/{run}.log",
    benchmark:
        "logs/benchmarks/ablation/{framework}/seed{seed}/{run}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        **params_of("ablation_train"),
        # Not an output: Snakemake deletes a failed job's outputs, and the checkpoints must survive.
        checkpoint_dir=layout.ABLATION_CHECKPOINT_DIR,
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --run {wildcards.run} --data {input.data} --model-dir {output.model_dir} --checkpoint-dir {params.checkpoint_dir} --out {output.record} --live-dir {output.live} --log {log}"


rule ablation:
    input:
        runs=ablation_records,
        # The last step: the article's pair's main runs of the ablation's seeds.
        metrics=main_runs("metrics", article.PAIR, config["ablation"]["seeds"]),
        main_runs=main_runs("run", article.PAIR, config["ablation"]["seeds"]),
        script="workflow/scripts/ablation_report.py",
        code=CODE["ablation"],
    output:
        md="reports/ablation.md",
        json="reports/ablation.json",
        figure="reports/figures/ablation.png",
    log:
        "logs/ablation.log",
    params:
        **params_of("ablation"),
        runs_dir=ablation_runs_dir,
        main_runs_dir=runs_dir,
    shell:
        "python {input.script} --runs-dir {params.runs_dir} --main-runs-dir {params.main_runs_dir} --out-md {output.md} --out-json {output.json} --figure {output.figure} --log {log}"
