# The report: statistics over seeds, paired tests, figures, report.md + report.html, metrics.json.
# It reads every run's files (docs/design.md, "Contracts") and the prepared cache (test labels and images); no
# framework is imported. Same command line as the DVC stage `report`.
#
# Its outputs are flagged with report(): `snakemake --report reports/snakemake-report.zip` puts
# them, with the captions of workflow/report/, in Snakemake's own report, next to the run's
# provenance (rules, code, params, runtimes). Captions are paths relative to this file.
from lenet_compare.report.common import FIGURES, SCREENSHOT


# Snakemake's report opens with this (the workflow in a few lines, rendered with the run's config).
report: "../report/workflow.rst"


# The subcategory of each figure (a name of FIGURES) in Snakemake's report; its caption is
# workflow/report/{name}.rst. A new figure missing here stops Snakemake at parse time (KeyError);
# one without a caption file stops `snakemake --report`.
FIGURE_SUBCATEGORIES = {
    "learning_curves": "Training",
    "drift": "Training",
    "accuracy_per_seed": "Test accuracy",
    "confusion_matrices": "Test accuracy",
    "per_class_accuracy": "Test accuracy",
    "disagreements": "Test accuracy",
    "timing": "Speed",
}


rule report:
    input:
        metrics=main_runs("metrics"),
        history=main_runs("history"),
        run=main_runs("run"),
        predictions=all_predictions(),
        cache=PREPARED,
        ablation="reports/ablation.json",
        script="workflow/scripts/report.py",
        code=CODE["report"],
    output:
        md="reports/report.md",
        html=report(
            "reports/report.html",
            caption="../report/report_html.rst",
            category="Comparison",
            subcategory="Report",
            labels={"file": "report.html"},
        ),
        metrics=report(
            "reports/metrics.json",
            caption="../report/metrics.rst",
            category="Comparison",
            subcategory="Report",
            labels={"file": "metrics.json"},
        ),
        figures=[
            report(
                f"reports/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                subcategory=FIGURE_SUBCATEGORIES[name],
                labels={"figure": name.replace("_", " ")},
            )
            for name in FIGURES
        ],
        confusion=[
            report(
                f"reports/plots/confusion_{framework}.csv",
                caption="../report/confusion_csv.rst",
                category="Data for DVC plots",
                subcategory="Confusion matrices",
                labels={"framework": framework},
            )
            for framework in config["frameworks"]
        ],
    log:
        "logs/report.log",
    params:
        **params_of("report"),
        runs_dir=runs_dir,
        predictions_dir=predictions_dir,
        figures_dir=figures_dir,
        plots_dir=plots_dir,
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
