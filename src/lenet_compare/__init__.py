"""Library code of the workflow's steps (workflow/scripts/*.py), one sub-package per step.

The folders follow the DAG, and imports only go down it (tests/test_layout.py keeps it so):

    core      params, errors, atomic writes, the steps' command line, the model spec, the article
    data      download, prepare: verified raw files, IDX parsing, the prepared cache
    train     init, train: shared weights and order, the epoch loop, checkpoints, the backends
    evaluate  evaluate: test-set metrics, inference timing
    report    report: statistics, figures, the Markdown and HTML report
    ablation  ablation_train, ablation: the article's setup and the steps from it
    bench     benchmark: training variants, pipeline overhead, the benchmark page

Nothing here imports torch or tensorflow at module level: one process holds one framework.
"""
