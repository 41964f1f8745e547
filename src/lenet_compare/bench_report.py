"""The benchmark's results: medians, ratios and targets (benchmark.json), a Markdown page and a figure.

Every derived number is computed here from the raw per-epoch seconds the timing processes
recorded, so the JSON holds both and a reader (or a test) can recompute each median and ratio.
Imports no framework.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path

import pandas as pd

from .devices import cpu_name, physical_gpu_count
from .report_files import FRAMEWORK_NAMES

EPOCH_IMAGES = 60000  # the targets are per epoch of the 60,000 training images
BASELINES = {"torch": ("plain", "article"), "tensorflow": ("plain",)}
PATH_LABELS = {"article": "article (DataLoader)", "plain": "plain", "ours": "ours (fast)"}
GB = 1e9  # the memory target is in decimal gigabytes
PACKAGES = ("numpy", "torch", "torchvision", "tensorflow", "keras", "snakemake", "dvc")

# (id, description, threshold, comparison, unit); the numbers are the issue's.
TARGETS = (
    ("torch_seconds_per_epoch", "PyTorch, our path: seconds per epoch of 60,000 images", 5.0, "<=", "s"),
    ("tensorflow_seconds_per_epoch", "TensorFlow, our path: seconds per epoch of 60,000 images", 6.0, "<=", "s"),
    ("torch_speedup_vs_plain", "PyTorch: plain loop / our path (median s/epoch)", 1.2, ">=", "x"),
    ("tensorflow_speedup_vs_plain", "TensorFlow: plain `model.fit` / our path", 1.2, ">=", "x"),
    ("torch_speedup_vs_article", "PyTorch: article's DataLoader path / our PyTorch path", 2.0, ">=", "x"),
    ("tensorflow_speedup_vs_article", "article's DataLoader path (PyTorch) / our TensorFlow path", 2.0, ">=", "x"),
    ("torch_peak_rss_gb", "PyTorch CPU training job (our path): peak RSS", 2.5, "<=", "GB"),
    ("tensorflow_peak_rss_gb", "TensorFlow CPU training job (our path): peak RSS", 2.5, "<=", "GB"),
    ("noop_snakemake_seconds", "no-op `snakemake --cores 2` (median)", 3.0, "<=", "s"),
    ("noop_dvc_repro_seconds", "no-op `dvc repro` (median)", 3.0, "<=", "s"),
)
CPU_ONLY = {t[0] for t in TARGETS if not t[0].startswith("noop_")}  # "this 2-core CPU" targets


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_names() -> list[str]:
    if physical_gpu_count() == 0 or shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def mem_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the numbers were measured on."""
    ram = mem_total_bytes()
    return {
        "cpu_model": cpu_name(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpus_online": os.cpu_count(),
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "gpus": gpu_names(),
    }


def path_summary(name: str, timing: dict, memory: dict, images: int) -> dict:
    raw = timing["paths"][name]
    median = statistics.median(raw["seconds"])
    return {
        **raw,
        "median_seconds_per_epoch": median,
        "images_per_second": images / median,
        "seconds_per_60k_images": median * EPOCH_IMAGES / images,
        "peak_rss_mb": memory["peak_rss_bytes"] / 2**20,
        "peak_rss_bytes": memory["peak_rss_bytes"],
        "peak_gpu_memory_mb": memory["peak_gpu_memory_mb"],
        "memory_process_epoch_seconds": memory["epoch_seconds"],
    }


def summarize(measured: dict[str, dict], pipeline: dict | None, settings: dict, command: str) -> dict:
    """benchmark.json: raw timings, medians, ratios (baseline median / ours median) and targets."""
    images = settings["images"]
    frameworks = {}
    for framework, m in measured.items():
        timing = m["timing"]
        paths = {name: path_summary(name, timing, m["memory"][name], images) for name in timing["paths"]}
        ours = paths["ours"]["median_seconds_per_epoch"]
        frameworks[framework] = {
            "framework_version": timing["framework_version"],
            "device": timing["device"],
            "device_name": timing["device_name"],
            "batch_size": timing["batch_size"],
            "run_order": timing["run_order"],
            "paths": paths,
            "speedup": {b: paths[b]["median_seconds_per_epoch"] / ours for b in BASELINES[framework] if b in paths},
            "evaluation": m["evaluation"],
        }
    if "torch" in frameworks and "tensorflow" in frameworks:
        # The article's code path is PyTorch's; TensorFlow's path is compared with it across processes.
        article = frameworks["torch"]["paths"]["article"]["median_seconds_per_epoch"]
        tf = frameworks["tensorflow"]
        tf["speedup"]["article"] = article / tf["paths"]["ours"]["median_seconds_per_epoch"]
    result = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "settings": settings,
        "machine": machine(),
        "frameworks": frameworks,
        "pipeline": pipeline,
    }
    result["targets"] = targets(result)
    return result


def target_values(result: dict) -> dict[str, float | None]:
    fw, pipeline = result["frameworks"], result["pipeline"]
    values: dict[str, float | None] = {}
    for f in ("torch", "tensorflow"):
        paths = fw.get(f, {}).get("paths", {})
        speedup = fw.get(f, {}).get("speedup", {})
        values[f"{f}_seconds_per_epoch"] = paths["ours"]["seconds_per_60k_images"] if paths else None
        values[f"{f}_speedup_vs_plain"] = speedup.get("plain")
        values[f"{f}_speedup_vs_article"] = speedup.get("article")
        values[f"{f}_peak_rss_gb"] = paths["ours"]["peak_rss_bytes"] / GB if paths else None
    noop = (pipeline or {}).get("noop")
    values["noop_snakemake_seconds"] = noop["median_seconds"]["snakemake"] if noop else None
    values["noop_dvc_repro_seconds"] = noop["median_seconds"]["dvc_repro"] if noop else None
    return values


def targets(result: dict) -> list[dict]:
    """Each target with its measured value and whether it is met (None: not measured or not applicable)."""
    values = target_values(result)
    devices = {f: d["device"] for f, d in result["frameworks"].items()}
    images = result["settings"]["images"]
    rows = []
    for target_id, description, threshold, comparison, unit in TARGETS:
        value = values[target_id]
        framework = target_id.split("_")[0]
        note = None
        if value is None:
            note = "not measured in this run"
        elif target_id in CPU_ONLY and any(d != "cpu" for d in devices.values()):
            note = f"a CPU target; this run trained on {', '.join(sorted(set(devices.values())))}"
        elif target_id.endswith("seconds_per_epoch") and images != EPOCH_IMAGES:
            note = f"extrapolated from {images:,} images per epoch"
        applies = value is not None and not (target_id in CPU_ONLY and any(d != "cpu" for d in devices.values()))
        met = None
        if applies:
            met = value <= threshold if comparison == "<=" else value >= threshold
        rows.append(
            {
                "id": target_id,
                "framework": framework if framework in FRAMEWORK_NAMES else None,
                "description": description,
                "value": value,
                "threshold": threshold,
                "comparison": comparison,
                "unit": unit,
                "met": met,
                "note": note,
            }
        )
    return rows


# ---- Markdown ----


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def markdown(result: dict, figure: str) -> str:
    s, m = result["settings"], result["machine"]
    lines = [
        "# Benchmark: training speed, memory and pipeline overhead",
        "",
        f"LeNet-5 (the spec of `params.yaml`), batch {s['batch_size']}, {s['images']:,} training images per "
        f"epoch; {s['warmup']} warm-up epoch(s) per path, then {s['repeats']} timed epochs per path, the paths "
        f"taking turns. Measured {result['created']} on {m['cpu_model']}, {m['cores_usable']} cores, "
        f"{m['ram_gib']} GiB RAM, {'GPU: ' + ', '.join(m['gpus']) if m['gpus'] else 'no GPU'}.",
        "",
        "## Targets",
        "",
        "| target | measured | target | met | note |",
        "|---|---:|---:|---|---|",
    ]
    for t in result["targets"]:
        lines.append(
            f"| {t['description']} | {_fmt(t['value'])}{'' if t['value'] is None else ' ' + t['unit']} | "
            f"{t['comparison']} {t['threshold']:g} "
            f"{t['unit']} | {_met(t['met'])} | {t['note'] or ''} |"
        )
    lines += ["", "## Training", ""]
    lines += [
        "| framework | path | median s/epoch | images/s | s/epoch per repetition | peak RSS (MiB) "
        "| peak GPU memory (MiB) | speedup of ours over it |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for f, fw in result["frameworks"].items():
        for name, p in fw["paths"].items():
            speedup = "" if name == "ours" else f"{fw['speedup'].get(name, float('nan')):.2f}x"
            reps = ", ".join(f"{x:.2f}" for x in p["seconds"])
            lines.append(
                f"| {FRAMEWORK_NAMES[f]} {fw['framework_version']} | {PATH_LABELS[name]} | "
                f"{p['median_seconds_per_epoch']:.3f} | {p['images_per_second']:,.0f} | {reps} | "
                f"{p['peak_rss_mb']:,.0f} | {_fmt(p['peak_gpu_memory_mb'], ',.0f')} | {speedup} |"
            )
    lines += [""]
    for f, fw in result["frameworks"].items():
        lines.append(f"- {FRAMEWORK_NAMES[f]} trained on {fw['device']} ({fw['device_name']}).")
        for name, p in fw["paths"].items():
            lines.append(f"  - {PATH_LABELS[name]}: {p['description']}.")
    if "tensorflow" in result["frameworks"] and "article" in result["frameworks"]["tensorflow"]["speedup"]:
        lines.append(
            "- TensorFlow's speedup over the article's path compares two processes (the article's code is "
            "PyTorch's), measured one after the other."
        )
    lines += [
        "",
        "## Evaluation throughput",
        "",
        "The evaluate step's measurement (`lenet_compare.inference_timing`), on the CPU as that step runs, "
        "on the model our path trained in the timing run (its weights do not change the speed).",
        "",
        "| framework | images/s (batch 1,000, whole test set) | single-image latency, median (ms) | p90 (ms) |",
        "|---|---:|---:|---:|",
    ]
    for f, fw in result["frameworks"].items():
        e = fw["evaluation"]
        lines.append(
            f"| {FRAMEWORK_NAMES[f]} | {e['inference_images_per_second']:,.0f} | "
            f"{e['latency_ms_single_image']:.2f} | {e['inference_timing']['latency_ms_p90']:.2f} |"
        )
    lines += pipeline_markdown(result["pipeline"])
    lines += [
        "",
        "## Figure",
        "",
        f"![Seconds per epoch per path, and pipeline wall time against seeds]({figure})",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}; {m['cores_usable']} cores usable by this process ({m['cpus_online']} online)",
        f"- RAM: {m['ram_gib']} GiB; OS: {m['os']}; Python {m['python']}",
        f"- GPU: {', '.join(m['gpus']) if m['gpus'] else 'none'}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
        "## How it was measured",
        "",
        "- Each framework runs in its own process (torch and tensorflow in one process crash). The plain and "
        "fast paths train on the 60,000 training images of the prepared cache (`x_train` + `x_val`), the "
        "article's path on torchvision's own FashionMNIST dataset (decompressed from `data/raw/`), so every "
        "path sees the same number of images per epoch. Each path is built and warmed up first (tracing, "
        "compilation and allocators are not timed), then the paths take turns, one epoch each "
        "(A, B, C, A, B, C, ...), so a slow spell of the machine hits all of them alike. Reported: the "
        "median of the timed epochs; images/s = images / median; speedup = baseline median / our median.",
        "- Frameworks are configured as the train step does (`train.device`, `train.deterministic`, "
        "`train.tf32` of params.yaml): the article's loop runs under the same settings as the other paths.",
        "- Peak RSS: a process's peak resident memory covers everything it ever held, so each path is also "
        "run alone in a fresh process (import, load its data, build, train one epoch) and that process's "
        "VmHWM is reported; on a GPU, the peak memory allocated by the framework in that process too.",
        "- Targets in seconds per epoch are for 60,000 images; a run with fewer images is extrapolated "
        "linearly (and its fixed costs weigh more). The training targets are this 2-core CPU's: on a GPU "
        "they are reported but not judged.",
    ]
    if result["pipeline"]:
        lines.append(
            "- Pipeline: in temporary copies of the repository with a tiny params.yaml (the default DAG's "
            "shape: same seeds and frameworks, fewer images, 1 epoch); each no-op command is timed as a "
            "whole (start-up included) and checked to have done nothing."
        )
    lines += ["", "## Command", "", "```bash", result["command"], "```", ""]
    return "\n".join(lines)


def pipeline_markdown(pipeline: dict | None) -> list[str]:
    lines = ["", "## Pipeline overhead", ""]
    if not pipeline:
        return [*lines, "Not measured in this run (`--skip-pipeline`)."]
    noop = pipeline["noop"]
    p = noop["params"]
    lines += [
        f"A tiny pipeline ({p['limit_train']:,} training images, {p['limit_test']:,} test images, "
        f"{p['epochs']} epoch, seeds {p['seeds']}, ablation seeds {p['ablation_seeds']}) ran once with "
        f"`{noop['first_run_command']}` ({noop['first_run_seconds']:.1f} s); then each command with nothing to do:",
        "",
        "| command | median (s) | each run (s) |",
        "|---|---:|---|",
    ]
    for name, cmd in noop["commands"].items():
        lines.append(
            f"| `{cmd}` | {noop['median_seconds'][name]:.2f} | {', '.join(f'{x:.2f}' for x in noop['seconds'][name])} |"
        )
    scaling = pipeline.get("seeds_scaling")
    if scaling:
        lines += [
            "",
            "### Wall time against the number of seeds",
            "",
            f"`{scaling['command']}`: {scaling['note']}; tiny params as above, but ablation seeds "
            f"{scaling['params']['ablation_seeds']} for every N.",
            "",
            "| seeds | jobs | wall time (s) |",
            "|---:|---:|---:|",
        ]
        lines += [f"| {r['seeds']} | {r['jobs']} | {r['seconds']:.1f} |" for r in scaling["runs"]]
    return lines


# ---- figure ----


def figure(result: dict, path: str | Path) -> Path:
    """Left: seconds per epoch per path and framework (bar: median, dots: repetitions). Right: seeds scaling."""
    from . import figures  # matplotlib and seaborn: only when drawing

    plt, sns = figures.plt, figures.sns
    rows = [
        {"Framework": figures.label(f), "path": PATH_LABELS[name], "seconds": x}
        for f, fw in result["frameworks"].items()
        for name, p in fw["paths"].items()
        for x in p["seconds"]
    ]
    df = pd.DataFrame(rows)
    colors = figures.palette(list(result["frameworks"]))
    order = [PATH_LABELS[n] for n in ("article", "plain", "ours") if PATH_LABELS[n] in set(df["path"])]
    with figures._style():
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        ax = axes[0]
        sns.barplot(
            data=df,
            x="path",
            y="seconds",
            hue="Framework",
            order=order,
            palette=colors,
            estimator="median",
            errorbar=None,
            alpha=0.85,
            ax=ax,
        )
        sns.stripplot(
            data=df,
            x="path",
            y="seconds",
            hue="Framework",
            order=order,
            palette=colors,
            dodge=True,
            color="black",
            size=4,
            legend=False,
            ax=ax,
            edgecolor="black",
            linewidth=0.6,
        )
        for container in ax.containers:
            ax.bar_label(container, fmt="{:.2f}", label_type="center", color="white", fontsize=9, fontweight="bold")
        ax.set(xlabel=None, ylabel="seconds per epoch")
        sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(colors), title=None, frameon=False)
        ax.set_title(f"Training, {result['settings']['images']:,} images per epoch (bar: median; dots: each run)")
        ax = axes[1]
        scaling = (result["pipeline"] or {}).get("seeds_scaling")
        if scaling:
            runs = pd.DataFrame(scaling["runs"])
            ax.plot(runs["seeds"], runs["seconds"], marker="o", color="0.25")
            for _, r in runs.iterrows():
                ax.annotate(
                    f"{r['seconds']:.0f} s",
                    (r["seeds"], r["seconds"]),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=9,
                )
            ax.set_xticks(runs["seeds"])
            ax.set_ylim(0, runs["seconds"].max() * 1.15)
            ax.set(xlabel="seeds", ylabel="wall time (s)")
            ax.set_title(f"Whole tiny pipeline from scratch ({scaling['command']})")
        else:
            ax.axis("off")
            ax.text(0.5, 0.5, "pipeline scaling not measured\n(--skip-pipeline)", ha="center", va="center", color="0.4")
        return figures._save(fig, path)
