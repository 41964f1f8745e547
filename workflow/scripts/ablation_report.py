"""Step `ablation` (report): the article's gap explained one factor at a time; ablation.md, .json and a figure.

Reads the ablation's runs, one record per run (workflow/scripts/ablation_train.py), and, for its
last step, the main pipeline's runs; never imports torch or tensorflow (lenet_compare.ablation.report).
"""

from pathlib import Path

from lenet_compare.ablation.report import build
from lenet_compare.core import cli
from lenet_compare.core.config import load_params


def main(args) -> None:
    params = load_params(args.params)
    build(
        params,
        runs_dir=args.runs_dir,
        main_runs_dir=args.main_runs_dir,
        out_md=args.out_md,
        out_json=args.out_json,
        figure=args.figure,
    )
    cli.log.info("wrote %s, %s and %s", args.out_md, args.out_json, args.figure)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--runs-dir", type=Path, required=True, help="reports/ablation/runs: one record per run")
    p.add_argument("--main-runs-dir", type=Path, required=True, help="reports/runs: the main runs, the last step")
    p.add_argument("--out-md", type=Path, required=True, help="the Markdown report of the ablation")
    p.add_argument("--out-json", type=Path, required=True, help="every number of the ablation, as JSON")
    p.add_argument("--figure", type=Path, required=True, help="the PNG figure: the gap after each step")
    cli.run(main, p.parse_args())
