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
        code=CODE["benchmark"],
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
        **params_of("benchmark"),
        raw_dir=raw_dir,
    shell:
        "python {input.script} --cache {input.cache} --raw-dir {params.raw_dir} --out-json {output.json} --out-md {output.md} --figure {output.figure} --log {log}"
