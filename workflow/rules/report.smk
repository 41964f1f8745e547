# The report: statistics over seeds, paired tests, figures, report.md + report.html, metrics.json.
# It reads every run's files (DESIGN.md) and the prepared cache (test labels and images); no
# framework is imported. Same command line as the DVC stage `report`.
from lenet_compare.report.common import FIGURES, SCREENSHOT


rule report:
    input:
        metrics=expand(
            "reports/runs/{framework}/seed{seed}/metrics.json",
            framework=config["frameworks"],
            seed=config["seeds"],
        ),
        history=expand(
            "reports/runs/{framework}/seed{seed}/history.csv",
            framework=config["frameworks"],
            seed=config["seeds"],
        ),
        run=expand(
            "reports/runs/{framework}/seed{seed}/run.json",
            framework=config["frameworks"],
            seed=config["seeds"],
        ),
        predictions=expand(
            "data/predictions/{framework}/seed{seed}.npz",
            framework=config["frameworks"],
            seed=config["seeds"],
        ),
        cache=PREPARED,
        ablation="reports/ablation.json",
        script="workflow/scripts/report.py",
        code=[
            "src/lenet_compare/report/compare.py",
            "src/lenet_compare/core/article.py",
            "src/lenet_compare/report/render.py",
            "src/lenet_compare/report/stats.py",
            "src/lenet_compare/report/figures.py",
            "src/lenet_compare/evaluate/classification.py",
            "src/lenet_compare/report/common.py",
            "src/lenet_compare/data/dataset.py",
            "src/lenet_compare/train/history.py",
            "src/lenet_compare/report/templates/report.md.j2",
            "src/lenet_compare/report/templates/page.html.j2",
        ],
    output:
        md="reports/report.md",
        html="reports/report.html",
        metrics="reports/metrics.json",
        figures=expand("reports/figures/{name}.png", name=FIGURES),
        confusion=expand(
            "reports/plots/confusion_{framework}.csv", framework=config["frameworks"]
        ),
    log:
        "logs/report.log",
    params:
        runs_dir=runs_dir,
        predictions_dir=predictions_dir,
        figures_dir=figures_dir,
        plots_dir=plots_dir,
        frameworks=config["frameworks"],
        seeds=config["seeds"],
        model=config["model"],
        train=config["train"],
        val_size=config["data"]["val_size"],
        split_seed=config["data"]["split_seed"],
        limit_train=config["data"]["limit_train"],
        limit_test=config["data"]["limit_test"],
        normalize=config["data"]["normalize"],
    shell:
        "python {input.script} --runs-dir {params.runs_dir} --predictions-dir {params.predictions_dir} "
        "--cache {input.cache} --out-md {output.md} --out-html {output.html} --metrics {output.metrics} "
        "--figures-dir {params.figures_dir} --plots-dir {params.plots_dir} --ablation {input.ablation} --log {log}"


# A picture of report.html as a browser shows it, for the README. Needs Debian's chromium and
# chromium-driver, so it is not part of `all`: `snakemake --cores 1 reports/figures/report_screenshot.png`.
rule report_screenshot:
    input:
        html="reports/report.html",
        code="src/lenet_compare/report/browser.py",
    output:
        screenshot=f"reports/figures/{SCREENSHOT}",
    log:
        "logs/report_screenshot.log",
    shell:
        "python -m lenet_compare.report.browser {input.html} --screenshot {output.screenshot} > {log} 2>&1"
