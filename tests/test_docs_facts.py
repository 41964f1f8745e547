"""The docs' generated facts (tools/docs_facts.py): every marked block of README.md and docs/ is
what the tool writes now from the code and the committed artifacts, and a block that differs, is
missing or is unknown fails. Also the marker helper both doc tools share (lenet_compare.core.doc_blocks).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, default_params, run

from lenet_compare.ablation.factors import runs_to_train
from lenet_compare.core import doc_blocks
from lenet_compare.core.article import PAIR
from lenet_compare.core.errors import PipelineError

# tools/docs_facts.py, loaded by path (tools/ is no package).
_spec = importlib.util.spec_from_file_location("docs_facts_tool", REPO / "tools/docs_facts.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

SOURCES = tool.load_sources(REPO)


def copy_pages(dest: Path) -> Path:
    """README.md and docs/ of the checkout, in ``dest``."""
    (dest / "docs").mkdir(parents=True)
    shutil.copy(REPO / "README.md", dest / "README.md")
    for page in (REPO / "docs").glob("*.md"):
        shutil.copy(page, dest / "docs" / page.name)
    return dest


def check(root: Path):
    return run([sys.executable, REPO / "tools/docs_facts.py", "--check", "--docs-root", root], REPO, check=False)


def test_every_block_is_what_the_tool_writes_now():
    pages = tool.read_pages(REPO)
    assert tool.differing(pages, SOURCES) == [], "run `python tools/docs_facts.py` and commit the pages"
    # Each block stands once, in the page the tool writes it to.
    for block in tool.BLOCKS:
        assert doc_blocks.names(pages[block.page]).count(tool.PREFIX + block.name) == 1


def test_an_altered_block_is_caught_and_rewritten(tmp_path):
    root = copy_pages(tmp_path)
    assert check(root).returncode == 0
    page = root / "docs/protocol.md"
    text = page.read_text()
    block = doc_blocks.block(text, "facts:ablation-runs")
    assert "runs per seed" in block
    page.write_text(text.replace(block, block.replace("runs per seed", "runs for each seed")))
    result = check(root)
    assert result.returncode == 1
    assert "docs/protocol.md: facts:ablation-runs" in result.stderr
    # Without --check the tool writes the block back as it was; nothing else on the page moves.
    run([sys.executable, REPO / "tools/docs_facts.py", "--docs-root", root], REPO)
    assert page.read_text() == text
    assert check(root).returncode == 0


@pytest.mark.parametrize("damage", ["markers removed", "unknown block", "block on another page"])
def test_a_missing_unknown_or_misplaced_block_fails(tmp_path, damage):
    root = copy_pages(tmp_path)
    readme = root / "README.md"
    if damage == "markers removed":
        page = root / "docs/performance.md"
        page.write_text(page.read_text().replace(doc_blocks.end_marker("facts:machine"), ""))
        expected = "facts:machine"
    elif damage == "unknown block":
        readme.write_text(readme.read_text() + "\n<!-- facts:runs-per-seed -->\n7\n<!-- /facts:runs-per-seed -->\n")
        expected = "facts:runs-per-seed"
    else:
        readme.write_text(readme.read_text() + "\n<!-- facts:demo -->\n<!-- /facts:demo -->\n")
        expected = "README.md: the block 'facts:demo'"
    result = check(root)
    assert result.returncode == 1
    assert expected in result.stderr


def with_params(**changes) -> tuple:
    params = copy.deepcopy(default_params())
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return SOURCES._replace(params=params)


def test_the_counts_and_defaults_come_from_the_code():
    # The ablation's runs follow factors.runs_to_train and ablation.seeds.
    assert "30 jobs for the 5 seeds" in tool.ablation_runs(SOURCES)
    text = tool.ablation_runs(with_params(**{"ablation.seeds": [0, 1]}))
    assert "6 runs per seed" in text and "12 jobs for the 2 seeds of `ablation.seeds` (0 and 1)" in text
    # Had the article's PyTorch code started from the shared weights, its init step would train nothing new.
    text = tool.ablation_runs(with_params(**{"ablation.article.torch.init": "shared"}))
    assert "5 runs per seed, 1 for PyTorch (`article`)" in text
    # The params tables quote params.yaml, and say when the defaults leave the article's hyperparameters.
    text = tool.train_params(with_params(**{"train.epochs": 20, "train.xla": True}))
    assert "| `train.epochs` | `20` |" in text and "| `train.xla` | `true` |" in text
    assert "the defaults differ in `epochs`" in text
    assert "| `train.eps` | `1e-8` |" in tool.train_params(SOURCES)
    # The demo's jobs follow its subset and the ablation's runs.
    runs = sum(len(runs_to_train(SOURCES.params, f)) for f in PAIR)  # 6 with the default params
    jobs = runs * len(SOURCES.demo["ablation_seeds"])
    assert f"{jobs} `ablation_train` ({runs} runs per seed)" in tool.demo_jobs(SOURCES)


def test_the_lists_of_frameworks_come_from_the_registry():
    table = tool.framework_table(SOURCES)
    for f in SOURCES.registry:
        assert f"| `{f.key}` | {f.name} | `{f.backend_dir}/` | `{f.model_file}` |" in table
        assert f"{f.name} (`{f.key}`)" in tool.readme_frameworks(SOURCES)
    # A new framework is a new registry row, and so a new row of the table and a new name in the README.
    extra = dataclasses.replace(SOURCES.registry[0], key="mxnet", name="MXNet", model_file="model.params")
    src = SOURCES._replace(registry=(*SOURCES.registry, extra))
    row = "| `mxnet` | MXNet | `src/lenet_compare/train/backends/mxnet/` | `model.params` | no |"
    assert row in tool.framework_table(src)
    readme = tool.readme_frameworks(src)
    assert "MXNet (`mxnet`)" in readme and "`mxnet` only when listed there" in readme
    src = with_params(frameworks=[f.key for f in SOURCES.registry])
    assert "trains every one of them by default" in tool.readme_frameworks(src)


def test_the_slurm_example_counts_its_jobs_from_the_params():
    n, seeds = len(SOURCES.params["frameworks"]), tool.SLURM_SEEDS
    assert f"that is {seeds * n} training jobs of one GPU each" in tool.slurm_jobs(SOURCES)
    text = tool.slurm_jobs(with_params(frameworks=["torch", "tensorflow"]))
    assert f"that is {2 * seeds} training jobs of one GPU each and {2 * seeds} evaluation jobs" in text
    runs = sum(len(runs_to_train(SOURCES.params, f)) for f in PAIR)
    assert f"{runs} per seed of `ablation.seeds`" in text


def with_seed_scaling(jobs: dict[int, int]) -> tuple:
    """SOURCES with reports/benchmark.json's seeds-scaling runs replaced: seeds -> jobs."""
    artifacts = copy.deepcopy(SOURCES.artifacts)
    artifacts["benchmark"]["pipeline"]["seeds_scaling"]["runs"] = [
        {"seeds": n, "jobs": j, "seconds": 1.0} for n, j in jobs.items()
    ]
    return SOURCES._replace(artifacts=artifacts)


def test_the_benchmark_dag_is_read_off_its_job_counts():
    # Each seed adds init and a train and an evaluate per framework: 5 jobs for two frameworks, 7 for three.
    two = with_seed_scaling({1: 16, 2: 21, 4: 31, 8: 51})
    assert "11 jobs plus 5 per seed" in tool.benchmark_dag(two) and "a DAG of 2 frameworks" in tool.benchmark_dag(two)
    text = tool.benchmark_dag(two._replace(params=with_params(frameworks=["torch", "tensorflow"]).params))
    assert "That is today's default too" in text
    three = with_seed_scaling({1: 18, 2: 25, 4: 39})
    text = tool.benchmark_dag(three._replace(params=with_params(frameworks=["torch", "tensorflow"]).params))
    assert "a DAG of 3 frameworks" in text and "Today's default trains 2" in text
    # Counts that no number of frameworks explains stop the tool.
    with pytest.raises(PipelineError, match="benchmark_dag"):
        tool.benchmark_dag(with_seed_scaling({1: 16, 2: 21, 4: 32}))


def test_a_param_without_a_meaning_stops_the_tool():
    params = with_params(**{"train.new_switch": False})
    with pytest.raises(PipelineError, match=r"train\.new_switch has no meaning"):
        tool.train_params(params)
    params = copy.deepcopy(default_params())
    del params["model"]["pooling"]
    with pytest.raises(PipelineError, match=r"model\.pooling, which params\.yaml lacks"):
        tool.model_params(SOURCES._replace(params=params))


def test_the_equivalence_numbers_by_hand():
    """Three seeds whose differences are +1, 0 and -2 points: mean -1/3, sd sqrt(7/3) = 1.528,
    t(0.95, 2) = 2.920 (a t table; 2.9199856 to 8 digits), half-width 2.920 * 1.528 / sqrt(3) = 2.575."""
    pt, tf = [0.90, 0.91, 0.92], [0.91, 0.91, 0.90]
    half = 2.919985580355516 * (7 / 3) ** 0.5 / 3**0.5
    metrics = {"n_seeds": 3, "equivalence": {"margin": 3.0, "ci90_low": -1 / 3 - half, "ci90_high": -1 / 3 + half}}
    src = SOURCES._replace(
        artifacts={**SOURCES.artifacts, "metrics": metrics}, accuracies={"torch": pt, "tensorflow": tf}
    )
    text = tool.equivalence_reach(src)
    for part in ("sd 1.528 points", "±2.920 · 1.528 / 1.732 = ±2.575", "−2.909 to +2.242", "mean of −0.333",
                 "±3.0 leaves room for a mean difference of up to 0.425"):  # fmt: skip
        assert part in text
    # A summary whose interval is not that of the runs is an error, not a block.
    metrics["equivalence"]["ci90_high"] += 0.01
    with pytest.raises(PipelineError, match="rerun the report step"):
        tool.equivalence_reach(src)


def test_the_machine_is_read_from_every_artifact():
    assert "2 cores of an Intel(R) Xeon(R) Processor" in tool.machine(SOURCES)
    artifacts = json.loads(json.dumps(SOURCES.artifacts))
    artifacts["xla"]["cpu"] = "AMD EPYC"
    text = tool.machine(SOURCES._replace(artifacts=artifacts))
    assert "xla: AMD EPYC, 2 cores" in text and "benchmark: Intel(R) Xeon(R) Processor" in text


def test_doc_blocks_replace_and_markers():
    note = "written by tools/wall_times.py from reports/wall_times.json"
    begin, end = doc_blocks.begin_marker("wall-times", note), doc_blocks.end_marker("wall-times")
    assert begin == f"<!-- wall-times: {note} -->" and end == "<!-- /wall-times -->"
    text = f"# Speed\n\nbefore\n{begin}\nold table\n{end}\nafter\n"
    assert (
        doc_blocks.replace(text, "wall-times", "| new |", note)
        == f"# Speed\n\nbefore\n{begin}\n| new |\n{end}\nafter\n"
    )
    assert doc_blocks.names(text) == ["wall-times"]
    assert doc_blocks.block(text, "wall-times") == f"{begin}\nold table\n{end}"
    for broken in ("no markers", f"{end}\n{begin}", f"{begin}{end}{begin}{end}", f"{begin}\n{end}\n{begin}\n{end}"):
        with pytest.raises(PipelineError, match="markers"):
            doc_blocks.replace(broken, "wall-times", "| new |", note)
