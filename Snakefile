# The workflow's Snakemake entry point: thin on purpose, the rules live in workflow/rules/.
# Each rule runs the same command line as the DVC stage of the same name (see dvc.yaml).
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
