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


# The answer, printed again after Snakemake's own summary: the report step's headline, read back
# from reports/metrics.json, but only when this run rewrote that file. So `snakemake benchmark`,
# or any run without the report job, prints nothing here (and a run with nothing to do never
# gets this far). The file's state is taken now, while the workflow is parsed, before any job.
from lenet_compare.report.common import announce, file_state

METRICS_AT_START = file_state(rules.report.output.metrics)


onsuccess:
    announce(rules.report.output.metrics, rules.report.output.html, METRICS_AT_START)
