# The benchmark: training speed of our paths against each framework's plain loop and the article's
# DataLoader loop, memory, evaluation speed, the engines' no-op overhead and wall time against the
# number of seeds. About 20 minutes on 2 CPU cores (estimated), so not part of `all`:
# `snakemake --cores 2 benchmark`. Same command line as the DVC stage in workflow/benchmark/dvc.yaml.
# Not a local rule (common.smk): on a cluster it is a job of its own, with `threads` CPUs.


rule benchmark:
    input:
        cache=PREPARED,
        raw=RAW,
        script="workflow/scripts/benchmark.py",
        code=[
            "src/lenet_compare/bench/training.py",
            "src/lenet_compare/bench/pipeline.py",
            "src/lenet_compare/bench/report.py",
            "src/lenet_compare/core/article.py",
            "src/lenet_compare/report/common.py",
            "src/lenet_compare/report/render.py",
            "src/lenet_compare/report/figures.py",
            "src/lenet_compare/report/templates/benchmark.md.j2",
            "src/lenet_compare/train/torch_backend.py",
            "src/lenet_compare/train/tensorflow_backend.py",
            "src/lenet_compare/evaluate/inference_timing.py",
            "src/lenet_compare/train/init_weights.py",
            "src/lenet_compare/train/minibatches.py",
            "src/lenet_compare/train/scores.py",
            "src/lenet_compare/train/divergence.py",
            "src/lenet_compare/train/history.py",
            "src/lenet_compare/core/spec.py",
            "src/lenet_compare/data/dataset.py",
        ],
    output:
        json="reports/benchmark.json",
        md="reports/benchmark.md",
        figure="reports/figures/benchmark.png",
    log:
        "logs/benchmark.log",
    # It measures speed: it has the machine's cores to itself.
    threads: workflow.cores
    # model and train are what the timed training reads. The pipeline measurements also copy
    # params.yaml whole (a tiny version of it), but listing every key would rerun a
    # 20-minute benchmark on any change of the experiment.
    params:
        raw_dir=raw_dir,
        model=config["model"],
        train=config["train"],
    shell:
        "python {input.script} --cache {input.cache} --raw-dir {params.raw_dir} --out-json {output.json} --out-md {output.md} --figure {output.figure} --log {log}"
