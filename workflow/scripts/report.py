"""Step `report`: statistics, figures and the comparison report (Markdown + HTML) from every run."""

from pathlib import Path

from lenet_compare.core import cli
from lenet_compare.core.config import load_params
from lenet_compare.report.common import headline, print_line
from lenet_compare.report.compare import build


def main(args) -> None:
    params = load_params(args.params)
    build(
        params,
        runs_dir=args.runs_dir,
        predictions_dir=args.predictions_dir,
        cache=args.cache,
        out_md=args.out_md,
        out_html=args.out_html,
        out_metrics=args.metrics,
        figures_dir=args.figures_dir,
        plots_dir=args.plots_dir,
        ablation=args.ablation,
    )
    cli.log.info("wrote %s, %s, %s and the figures in %s", args.out_md, args.out_html, args.metrics, args.figures_dir)
    # The answer, as the last line on stdout (the log goes to stderr): what `dvc repro` and
    # Snakemake leave on screen. Read back from the metrics file, as Snakemake's onsuccess does.
    print_line(headline(args.metrics, args.out_html))


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--runs-dir", type=Path, required=True, help="reports/runs: {framework}/seed{seed}/ per run")
    p.add_argument("--predictions-dir", type=Path, required=True, help="data/predictions: {framework}/seed{seed}.npz")
    p.add_argument("--cache", type=Path, required=True, help="the prepared .npz cache (test labels and images)")
    p.add_argument("--out-md", type=Path, required=True, help="the Markdown report")
    p.add_argument("--out-html", type=Path, required=True, help="the self-contained HTML report")
    p.add_argument("--metrics", type=Path, required=True, help="summary JSON: DVC's metrics, the headline's source")
    p.add_argument("--figures-dir", type=Path, required=True, help="folder of the PNG figures")
    p.add_argument("--plots-dir", type=Path, required=True, help="folder of the CSVs for DVC's confusion plots")
    p.add_argument("--ablation", type=Path, help="optional: reports/ablation.json, summarized in the report and linked")
    cli.run(main, p.parse_args())
