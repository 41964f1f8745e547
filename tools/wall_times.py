"""Summarize each job's wall time of the last full run, from the jobs' own records.

Reads the run records of the default pipeline (every framework and seed of params.yaml, every
run of the ablation's seeds; lenet_compare.bench.wall_times says how) and writes
reports/wall_times.json (every job, and the summary) and reports/wall_times.md, then puts the
summary table into docs/performance.md between its ``wall-times`` markers, so that the docs
quote the committed artifact rather than numbers copied by hand. Run it after a full
`dvc repro` (or Snakemake run) and commit all three files; tests/test_wall_times.py checks that
they match the committed records.

    python tools/wall_times.py [--params params.yaml] [--docs docs/performance.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lenet_compare.bench import wall_times
from lenet_compare.core import doc_blocks, layout
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.core.config import load_params
from lenet_compare.core.errors import PipelineError

REPO = Path(__file__).resolve().parents[1]
BLOCK = "wall-times"
NOTE = "written by tools/wall_times.py from reports/wall_times.json"
BEGIN, END = doc_blocks.begin_marker(BLOCK, NOTE), doc_blocks.end_marker(BLOCK)


def quote_in_docs(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    return doc_blocks.replace(text, BLOCK, table, NOTE)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    p.add_argument("--runs-dir", type=Path, default=REPO / layout.RUNS_DIR)
    p.add_argument("--ablation-runs-dir", type=Path, default=REPO / layout.ABLATION_RUNS_DIR)
    p.add_argument("--out-json", type=Path, default=REPO / "reports/wall_times.json")
    p.add_argument("--out-md", type=Path, default=REPO / "reports/wall_times.md")
    p.add_argument("--docs", type=Path, default=REPO / "docs/performance.md")
    args = p.parse_args()
    try:
        rows = wall_times.collect(load_params(args.params), args.runs_dir, args.ablation_runs_dir)
        summary = wall_times.summarize(rows)
        docs = quote_in_docs(args.docs.read_text(encoding="utf-8"), wall_times.table(summary))
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_json(args.out_json, summary)
    write_text(args.out_md, wall_times.render_markdown(summary))
    write_text(args.docs, docs)
    print(f"wrote {args.out_json}, {args.out_md} and the table in {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
