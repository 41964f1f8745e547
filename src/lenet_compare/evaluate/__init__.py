"""The evaluate step: per-class metrics of test-set predictions and inference timing, computed
the same way for every framework."""
