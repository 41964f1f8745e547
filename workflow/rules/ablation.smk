# The article's setup, explained: its setup trained over ablation.seeds, then one factor at a
# time moved to the controlled protocol (lenet_compare.ablation.factors). The last step is the main
# runs (train.smk), so the ablation reads their metrics instead of training them again.
# Same command lines as the DVC stages `ablation_train` and `ablation`.


rule ablation_train:
    input:
        data=PREPARED,
        script="workflow/scripts/ablation_train.py",
        code=[
            "src/lenet_compare/train/{framework}_backend.py",
            "src/lenet_compare/ablation/factors.py",
            "src/lenet_compare/core/article.py",
            "src/lenet_compare/train/job.py",
            "src/lenet_compare/train/loop.py",
            "src/lenet_compare/train/live.py",
            "src/lenet_compare/train/checkpoints.py",
            "src/lenet_compare/train/divergence.py",
            "src/lenet_compare/train/scores.py",
            "src/lenet_compare/train/minibatches.py",
            "src/lenet_compare/train/init_weights.py",
            "src/lenet_compare/core/spec.py",
            "src/lenet_compare/data/dataset.py",
        ],
    output:
        models_dir=directory("data/ablation/models/{framework}/seed{seed}"),
        runs="reports/ablation/runs/{framework}/seed{seed}.json",
        # Each run's epochs as they end, in DVCLive's format, under plots/metrics/{run}/
        # (docs/live-metrics.md); rebuilt from the checkpoints when a job resumes.
        live=directory("reports/ablation/live/{framework}/seed{seed}"),
    log:
        "logs/ablation/{framework}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/ablation/{framework}/seed{seed}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        model=config["model"],
        train=config["train"],
        steps=config["ablation"]["steps"],
        article=config["ablation"]["article"],
        # Not an output: Snakemake deletes a failed job's outputs, and the checkpoints must survive.
        checkpoint_dir="data/checkpoints/ablation/{framework}/seed{seed}",
    shell:
        "python {input.script} --framework {wildcards.framework} --seed {wildcards.seed} --data {input.data} --models-dir {output.models_dir} --checkpoint-dir {params.checkpoint_dir} --out {output.runs} --live-dir {output.live} --log {log}"


rule ablation:
    input:
        runs=expand(
            "reports/ablation/runs/{framework}/seed{seed}.json",
            framework=config["frameworks"],
            seed=config["ablation"]["seeds"],
        ),
        # The last step: the main runs of the ablation's seeds.
        metrics=expand(
            "reports/runs/{framework}/seed{seed}/metrics.json",
            framework=config["frameworks"],
            seed=config["ablation"]["seeds"],
        ),
        main_runs=expand(
            "reports/runs/{framework}/seed{seed}/run.json",
            framework=config["frameworks"],
            seed=config["ablation"]["seeds"],
        ),
        script="workflow/scripts/ablation_report.py",
        code=[
            "src/lenet_compare/ablation/factors.py",
            "src/lenet_compare/ablation/report.py",
            "src/lenet_compare/core/article.py",
            "src/lenet_compare/report/render.py",
            "src/lenet_compare/report/common.py",
            "src/lenet_compare/report/stats.py",
            "src/lenet_compare/report/figures.py",
            "src/lenet_compare/report/templates/ablation.md.j2",
        ],
    output:
        md="reports/ablation.md",
        json="reports/ablation.json",
        figure="reports/figures/ablation.png",
    log:
        "logs/ablation.log",
    params:
        model=config["model"],
        train=config["train"],
        ablation=config["ablation"],
        runs_dir=ablation_runs_dir,
        main_runs_dir=runs_dir,
    shell:
        "python {input.script} --runs-dir {params.runs_dir} --main-runs-dir {params.main_runs_dir} --out-md {output.md} --out-json {output.json} --figure {output.figure} --log {log}"
