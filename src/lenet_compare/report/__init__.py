"""The report step: statistics over seeds and paired tests, seaborn figures, and the Markdown
and self-contained HTML report rendered from jinja templates (templates/, shared with the
ablation and benchmark pages)."""
