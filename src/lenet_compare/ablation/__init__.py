"""The article's setup, explained: its factors and the cumulative steps from its setup to the
controlled protocol (factors), and the ablation's statistics and page (report)."""
