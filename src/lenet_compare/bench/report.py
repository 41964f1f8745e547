"""The benchmark's results: medians, ratios and targets (benchmark.json), a Markdown page and a figure.

Every derived number is computed here from the raw per-epoch seconds the timing processes
recorded, so the JSON holds both and a reader (or a test) can recompute each median and ratio.
The Markdown page is rendered from that JSON's content alone (templates/benchmark.md.j2; the
rows are computed here, the template lays them out), so it can be rendered again from the file.
Imports no framework.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from lenet_compare.core import article
from lenet_compare.core import frameworks as registry
from lenet_compare.core.atomic import write_text
from lenet_compare.core.frameworks import ARTICLE, OURS, PLAIN
from lenet_compare.evaluate.inference_timing import FASTEST
from lenet_compare.report.render import Markdown, environment
from lenet_compare.train.devices import cpu_name, physical_gpu_count

EPOCH_IMAGES = 60000  # the targets are per epoch of the 60,000 training images
# ARTICLE, the variant that runs the article's code, is one framework's, the article's PyTorch
# (core.article.PAIR[0]); the other frameworks' fast paths are compared with it across processes.
VARIANT_LABELS = {ARTICLE: "article (DataLoader)", PLAIN: "plain", OURS: "ours (fast)"}
GB = 1e9  # the memory target is in decimal gigabytes
# The pip packages whose versions benchmark.json records: NumPy, every framework's, the engines.
PACKAGES = tuple(dict.fromkeys(("numpy", *(p for f in registry.REGISTRY for p in f.packages), "snakemake", "dvc")))


class Target(NamedTuple):
    """One target of the benchmark: what it measures, and the threshold it must meet."""

    id: str
    description: str
    threshold: float
    comparison: str  # "<=" or ">="
    unit: str
    framework: str | None = None  # None: the engines' target, not one framework's


def _targets() -> tuple[Target, ...]:
    """The issue's targets: speed and memory of the article's pair (its PyTorch and its TensorFlow),
    each named {framework}_{what}, then the engines' no-op overhead."""
    pt, tf = article.PAIR
    n = {f: registry.get(f).title for f in article.PAIR}
    per_epoch, rss = "our variant: seconds per epoch of 60,000 images", "CPU training job (our variant): peak RSS"
    pair = (
        (pt, "seconds_per_epoch", f"{n[pt]}, {per_epoch}", 5.0, "<=", "s"),
        (tf, "seconds_per_epoch", f"{n[tf]}, {per_epoch}", 6.0, "<=", "s"),
        (pt, "speedup_vs_plain", f"{n[pt]}: plain loop / our variant (median s/epoch)", 1.2, ">=", "x"),
        (tf, "speedup_vs_plain", f"{n[tf]}: plain `model.fit` / our variant", 1.2, ">=", "x"),
        (pt, "speedup_vs_article", f"{n[pt]}: article's DataLoader variant / our {n[pt]} variant", 2.0, ">=", "x"),
        (tf, "speedup_vs_article", f"article's DataLoader variant ({n[pt]}) / our {n[tf]} variant", 2.0, ">=", "x"),
        (pt, "peak_rss_gb", f"{n[pt]} {rss}", 2.5, "<=", "GB"),
        (tf, "peak_rss_gb", f"{n[tf]} {rss}", 2.5, "<=", "GB"),
    )
    return (
        *(
            Target(f"{f}_{what}", text, threshold, comparison, unit, f)
            for f, what, text, threshold, comparison, unit in pair
        ),
        Target("noop_snakemake_seconds", "no-op `snakemake --cores 2` (median)", 3.0, "<=", "s"),
        Target("noop_dvc_repro_seconds", "no-op `dvc repro` (median)", 3.0, "<=", "s"),
    )


TARGETS = _targets()
CPU_ONLY = {t.id for t in TARGETS if t.framework is not None}  # "this 2-core CPU" targets


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
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


def variant_summary(name: str, timing: dict, memory: dict, images: int) -> dict:
    """One variant's raw seconds with their median, throughput and the memory of its own process."""
    raw = timing["variants"][name]
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
    """benchmark.json: raw timings, medians, ratios (baseline median / ours median) and targets.

    A framework without a fast path (no ``ours`` variant in the registry, as a reference that only
    checks) has its timings and no ratios.
    """
    images = settings["images"]
    frameworks = {}
    for framework, m in measured.items():
        timing = m["timing"]
        variants = {name: variant_summary(name, timing, m["memory"][name], images) for name in timing["variants"]}
        baselines = registry.get(framework).baselines if OURS in variants else ()
        frameworks[framework] = {
            "framework_version": timing["framework_version"],
            "device": timing["device"],
            "device_name": timing["device_name"],
            "batch_size": timing["batch_size"],
            "run_order": timing["run_order"],
            "variants": variants,
            "speedup": {
                b: variants[b]["median_seconds_per_epoch"] / variants[OURS]["median_seconds_per_epoch"]
                for b in baselines
                if b in variants
            },
            "evaluation": m["evaluation"],
        }
    owner = next((f for f, fw in frameworks.items() if ARTICLE in fw["variants"]), None)
    if owner is not None:
        # The article's code is one framework's; the others' fast paths are compared with it across processes.
        seconds = frameworks[owner]["variants"][ARTICLE]["median_seconds_per_epoch"]
        for f, other in frameworks.items():
            if f != owner and OURS in other["variants"]:
                other["speedup"][ARTICLE] = seconds / other["variants"][OURS]["median_seconds_per_epoch"]
    result: dict[str, Any] = {
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
    for f in {t.framework for t in TARGETS if t.framework is not None}:
        variants = fw.get(f, {}).get("variants", {})
        speedup = fw.get(f, {}).get("speedup", {})
        ours = variants.get(OURS)
        values[f"{f}_seconds_per_epoch"] = ours["seconds_per_60k_images"] if ours else None
        values[f"{f}_speedup_vs_plain"] = speedup.get(PLAIN)
        values[f"{f}_speedup_vs_article"] = speedup.get(ARTICLE)
        values[f"{f}_peak_rss_gb"] = ours["peak_rss_bytes"] / GB if ours else None
    noop = (pipeline or {}).get("noop")
    values["noop_snakemake_seconds"] = noop["median_seconds"]["snakemake"] if noop else None
    values["noop_dvc_repro_seconds"] = noop["median_seconds"]["dvc_repro"] if noop else None
    return values


def targets(result: dict) -> list[dict]:
    """Each target with its measured value and whether it is met (None: not measured or not applicable)."""
    values = target_values(result)
    devices = {f: d["device"] for f, d in result["frameworks"].items()}
    off_cpu = any(d != "cpu" for d in devices.values())
    images = result["settings"]["images"]
    rows = []
    for target_id, description, threshold, comparison, unit, framework in TARGETS:
        value = values[target_id]
        not_judged = target_id in CPU_ONLY and off_cpu  # a CPU target, measured elsewhere
        note = None
        if value is None:
            note = "not measured in this run"
        elif not_judged:
            note = f"a CPU target; this run trained on {', '.join(sorted(set(devices.values())))}"
        elif target_id.endswith("seconds_per_epoch") and images != EPOCH_IMAGES:
            note = f"extrapolated from {images:,} images per epoch"
        met = None
        if value is not None and not not_judged:
            met = value <= threshold if comparison == "<=" else value >= threshold
        rows.append(
            {
                "id": target_id,
                "framework": framework,
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


def target_rows(targets: list[dict]) -> list[dict]:
    """The table of targets: what, the measured value with its unit, the target, met or not, a note."""
    return [
        {
            "description": Markdown(t["description"]),
            "measured": _fmt(t["value"]) + ("" if t["value"] is None else f" {t['unit']}"),
            "target": Markdown(f"{t['comparison']} {t['threshold']:g} {t['unit']}"),
            "met": Markdown(_met(t["met"])),
            "note": t["note"] or "",
        }
        for t in targets
    ]


def training_rows(frameworks: dict) -> list[dict]:
    """One row per framework and variant: median, throughput, every repetition, memory, our speedup over it."""
    rows = []
    for f, fw in frameworks.items():
        for name, v in fw["variants"].items():
            rows.append(
                {
                    "framework": f"{registry.name(f)} {fw['framework_version']}",
                    "variant": VARIANT_LABELS[name],
                    "median": f"{v['median_seconds_per_epoch']:.3f}",
                    "images_per_second": f"{v['images_per_second']:,.0f}",
                    "repetitions": ", ".join(f"{x:.2f}" for x in v["seconds"]),
                    "peak_rss_mb": f"{v['peak_rss_mb']:,.0f}",
                    "peak_gpu_memory_mb": _fmt(v["peak_gpu_memory_mb"], ",.0f"),
                    "speedup": f"{fw['speedup'][name]:.2f}x" if name in fw["speedup"] else "",
                }
            )
    return rows


def device_notes(frameworks: dict) -> list[dict]:
    """Per framework: where it trained, and what each of its variants is."""
    return [
        {
            "name": registry.name(f),
            "device": fw["device"],
            "device_name": fw["device_name"],
            "variants": [
                {"label": VARIANT_LABELS[name], "description": Markdown(v["description"])}
                for name, v in fw["variants"].items()
            ],
        }
        for f, fw in frameworks.items()
    ]


def _fastest_single_image(evaluation: dict) -> dict:
    return next(r for r in evaluation["inference"]["rows"] if r["batch_size"] == 1 and r["path"] == FASTEST)


def evaluation_rows(frameworks: dict) -> list[dict]:
    """The evaluate step's inference speed per framework."""
    rows = []
    for f, fw in frameworks.items():
        e = fw["evaluation"]
        rows.append(
            {
                "name": registry.name(f),
                "images_per_second": f"{e['inference_images_per_second']:,.0f}",
                "latency_ms": f"{e['latency_ms_single_image']:.2f}",
                "latency_ms_p90": f"{_fastest_single_image(e)['p90_ms']:.2f}",
            }
        )
    return rows


def noop_summary(noop: dict) -> dict:
    """The engines' no-op overhead: the tiny pipeline's size, its first run, each command's times."""
    p = noop["params"]
    return {
        "limit_train": f"{p['limit_train']:,}",
        "limit_test": f"{p['limit_test']:,}",
        "epochs": p["epochs"],
        # Python's list notation, as params.yaml's flow style reads: no Markdown escaping of the brackets.
        "seeds": Markdown(str(p["seeds"])),
        "ablation_seeds": Markdown(str(p["ablation_seeds"])),
        "first_run_command": noop["first_run_command"],
        "first_run_seconds": f"{noop['first_run_seconds']:.1f}",
        "commands": [
            {
                "command": cmd,
                "median": f"{noop['median_seconds'][name]:.2f}",
                "each": ", ".join(f"{x:.2f}" for x in noop["seconds"][name]),
            }
            for name, cmd in noop["commands"].items()
        ],
    }


def scaling_summary(scaling: dict) -> dict:
    """Wall time of the whole tiny pipeline against the number of seeds."""
    return {
        "command": scaling["command"],
        "note": scaling["note"],
        "ablation_seeds": Markdown(str(scaling["params"]["ablation_seeds"])),
        "runs": [{"seeds": r["seeds"], "jobs": r["jobs"], "seconds": f"{r['seconds']:.1f}"} for r in scaling["runs"]],
    }


def markdown(result: dict, figure: str) -> str:
    """benchmark.md from benchmark.json's content; ``figure``: the figure's path relative to the page."""
    frameworks, pipeline = result["frameworks"], result["pipeline"]
    return (
        environment()
        .get_template("benchmark.md.j2")
        .render(
            s=result["settings"],
            m=result["machine"],
            created=result["created"],
            command=result["command"],
            epoch_images=EPOCH_IMAGES,
            targets=target_rows(result["targets"]),
            training=training_rows(frameworks),
            devices=device_notes(frameworks),
            # Some framework's speedup over the article's variant, which another framework's process ran.
            cross_process=any(ARTICLE in fw["speedup"] and ARTICLE not in fw["variants"] for fw in frameworks.values()),
            evaluation=evaluation_rows(frameworks),
            noop=noop_summary(pipeline["noop"]) if pipeline else None,
            scaling=scaling_summary(pipeline["seeds_scaling"]) if pipeline and pipeline.get("seeds_scaling") else None,
            figure=Markdown(figure),
        )
    )


def write_markdown(result_json: Path, out_md: Path, figure: Path) -> None:
    """Render benchmark.md again from benchmark.json alone (the step does so right after writing the JSON)."""
    result = json.loads(Path(result_json).read_text(encoding="utf-8"))
    write_text(out_md, markdown(result, os.path.relpath(figure, Path(out_md).parent)))


# ---- figure ----


def figure(result: dict, path: str | Path) -> Path:
    """Left: seconds per epoch per variant and framework (bar: median, dots: repetitions). Right: seeds scaling."""
    from lenet_compare.bench import figures  # matplotlib and seaborn: only when drawing

    seconds = pd.DataFrame(
        [
            {"Framework": registry.name(f), "variant": VARIANT_LABELS[name], "seconds": x}
            for f, fw in result["frameworks"].items()
            for name, v in fw["variants"].items()
            for x in v["seconds"]
        ]
    )
    order = [label for label in VARIANT_LABELS.values() if label in set(seconds["variant"])]
    scaling = (result["pipeline"] or {}).get("seeds_scaling")
    return figures.benchmark(
        seconds,
        order,
        list(result["frameworks"]),
        result["settings"]["images"],
        pd.DataFrame(scaling["runs"]) if scaling else None,
        scaling["command"] if scaling else None,
        path,
    )
