# Data steps: verified download, then one normalized cache shared by every training job.
# `params:` lists exactly the keys a step reads, so Snakemake reruns it when they change,
# like the `params:` of the DVC stage of the same name. Both are local rules (common.smk): on a
# cluster they run where Snakemake runs, which has the internet `download` needs (compute nodes
# often have none).


rule download:
    input:
        script="workflow/scripts/download.py",
        code=CODE["download"],
    output:
        raw=RAW,
        provenance="reports/data/provenance.json",
    log:
        "logs/download.log",
    # data.download_timeout / download_retries are read too but not listed: they change how
    # long a download may take, never which (checksum-verified) bytes it delivers.
    params:
        **params_of("download"),
        raw_dir=raw_dir,
    shell:
        "python {input.script} --out-dir {params.raw_dir} --provenance {output.provenance} --log {log}"


rule prepare:
    input:
        raw=RAW,
        script="workflow/scripts/prepare.py",
        code=CODE["prepare"],
    output:
        cache=PREPARED,
        summary="reports/data/prepared.json",
    log:
        "logs/prepare.log",
    params:
        **params_of("prepare"),
        raw_dir=raw_dir,
    shell:
        "python {input.script} --raw-dir {params.raw_dir} --out {output.cache} --summary {output.summary} --log {log}"
