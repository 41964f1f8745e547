"""The report step: every framework over seeds and every pair of frameworks paired by seed
(statistics, Holm-adjusted over the pairs), seaborn figures, reports/metrics.json, and the Markdown
and self-contained HTML report rendered from jinja templates (templates/, shared with the
ablation and benchmark pages). compare.build runs it: inputs, analysis (stats, sentences),
drawing (figures), document (render), metrics_file."""
