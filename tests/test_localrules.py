"""Which steps run where on a cluster: docs/snakemake.md's table against the workflow's local rules.

A local rule (the `localrules:` directive in workflow/rules/common.smk) runs on the machine that
runs Snakemake; every other rule is submitted as a cluster job. The table must name every rule
of the workflow with where it runs, so a new rule, or a rule moved in or out of `localrules:`,
fails here until the documentation says so. tests/test_slurm.py checks the effect on a real
Slurm cluster: the local rules' jobs are never submitted.
"""

from __future__ import annotations

import json
import re

from conftest import REPO, run

from lenet_compare.bench.pipeline import copy_checkout

DOC = REPO / "docs" / "snakemake.md"
HEADING = "## Where each step runs"
WHERE = {"local": True, "Slurm job": False}
# Loads the workflow as Snakemake does and prints, for each rule, whether it is local: named by
# a `localrules:` directive (or `localrule: True`), or a rule with nothing to run, like `all`.
# Snakemake keeps that set in a private attribute; no public API or dry run says it.
PROBE = """include: "Snakefile"


import json

print("LOCAL_RULES " + json.dumps({r.name: r.name in workflow._localrules or r.norun for r in workflow.rules}))
"""


def documented() -> dict[str, bool]:
    """Rule -> local, from the table after HEADING: | `rule` | local or Slurm job | why |."""
    lines = DOC.read_text().split(HEADING, 1)[1].splitlines()
    rows = {}
    for line in lines:
        if match := re.match(r"^\| `(\w+)` \| ([^|]+?) \|", line):
            rows[match[1]] = WHERE[match[2]]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_documented_places_are_the_workflows(tmp_path):
    repo = copy_checkout(REPO, tmp_path / "repo")
    (repo / "probe.smk").write_text(PROBE)
    listed = run(["snakemake", "-s", "probe.smk", "--list-rules"], repo).stdout
    local = json.loads(re.search(r"^LOCAL_RULES (.*)$", listed, re.MULTILINE)[1])
    assert documented() == local
    # What the choice rests on (common.smk): the internet for download, and the heavy steps on the cluster.
    assert local["download"] and not any(local[r] for r in ("train", "evaluate", "ablation_train", "benchmark"))
