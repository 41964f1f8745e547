"""The report's text: its title, what the template (templates/report.md.j2) sees, the Markdown it renders.

report.md and report.html come from the one template, rendered once with figures linked as files
and once with figures as data: URIs (lenet_compare.report.render escapes and converts).
"""

from __future__ import annotations

import math
import os
from importlib import metadata
from pathlib import Path

import yaml

from lenet_compare.core import article
from lenet_compare.core.frameworks import BY_KEY
from lenet_compare.report import stats
from lenet_compare.report.inputs import Inputs
from lenet_compare.report.render import environment, image_link, md_link

REPORT_LIBRARIES = ("numpy", "scipy", "statsmodels", "pandas", "matplotlib", "seaborn", "jinja2", "markdown-it-py")


def title_name(framework: str) -> str:
    """The framework as the title names it ("TensorFlow", where its name is "TensorFlow/Keras");
    an unknown key (a test's made-up framework) as it is."""
    return BY_KEY[framework].title if framework in BY_KEY else framework


def _and(names: list[str]) -> str:
    """ "JAX", "JAX and MXNet", "JAX, MXNet and Flux"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def title(frameworks: list[str]) -> str:
    """The report's title, from params.yaml's frameworks: the article's two first, TensorFlow vs PyTorch,
    then any further framework after "and".

    "TensorFlow vs PyTorch: LeNet-5 on Fashion-MNIST, a controlled comparison"; with jax too,
    "TensorFlow vs PyTorch and JAX: ...". With one framework, nothing is compared and the
    title stays the article's comparison.
    """
    article_pair = [title_name(f) for f in reversed(article.PAIR) if f in frameworks]
    names = article_pair + [title_name(f) for f in frameworks if f not in article.PAIR]
    if len(names) < 2:
        names = [title_name(f) for f in reversed(article.PAIR)]
    return f"{names[0]} vs {_and(names[1:])}: LeNet-5 on Fashion-MNIST, a controlled comparison"


def further_names(frameworks: list[str]) -> str | None:
    """The frameworks beyond the article's two, as the intro names them ("JAX"); None when none."""
    further = [title_name(f) for f in frameworks if f not in article.PAIR]
    return _and(further) if further else None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in REPORT_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def keras_eps_steps(beta2: float, tolerance: float = 0.01) -> int:
    """Steps after which Keras's eps / sqrt(1 - beta2^t) is within ``tolerance`` of eps."""
    if beta2 <= 0:
        return 1
    return max(1, math.ceil(math.log(1 - 1 / (1 + tolerance) ** 2) / math.log(beta2)))


def ablation_context(ablation: dict | None, page: Path) -> dict | None:
    """The template's view of the ablation (inputs.load_ablation): its sentences, a link relative to ``page``."""
    if ablation is None:
        return None
    href = Path(os.path.relpath(ablation["markdown"], Path(page).parent)).as_posix()
    return {"sentences": ablation["sentences"], "link": md_link(href, href)}


def render_markdown(inp: Inputs, analysis: dict, figure_src: dict[str, str], ablation: dict | None = None) -> str:
    train = inp.params["train"]
    shown_params = {key: inp.params[key] for key in ("frameworks", "seeds", "model", "train") if key in inp.params}
    shown_params["data"] = {
        k: v for k, v in inp.params["data"].items() if k not in ("sources", "download_timeout", "download_retries")
    }
    context = {
        "title": title(inp.frameworks),
        "further": further_names(inp.frameworks),
        "a": analysis,
        "fw": analysis["frameworks"],
        "pair": analysis["pair"],
        "pairs": analysis["pairs"],
        "seeds": inp.seeds,
        "frameworks": inp.frameworks,
        "params": inp.params,
        "train": train,
        "model": inp.params["model"],
        "article": {"published": article.PUBLISHED, "code": article.CODE, "truncation": article.TRUNCATED_ACCURACY},
        "alpha": stats.ALPHA,
        "wilcoxon_method_words": stats.WILCOXON_METHOD_WORDS,
        "cache": inp.cache_meta,
        "figure": {name: image_link(name, src) for name, src in figure_src.items()},
        "params_yaml": yaml.safe_dump(shown_params, sort_keys=False),
        "libraries": library_versions(),
        "eps_steps": f"{keras_eps_steps(train['betas'][1]):,}",
        "ablation": ablation,
    }
    return environment().get_template("report.md.j2").render(context)
