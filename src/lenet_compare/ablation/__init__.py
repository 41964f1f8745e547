"""The article's setup, explained: its factors and the cumulative steps from its setup to the
controlled protocol (factors), and the ablation's report: its runs read and checked (inputs), its
numbers (analysis), its words (sentences), its figure (figures), and the step that writes them (report)."""
