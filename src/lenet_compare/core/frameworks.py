"""The registry of frameworks: one frozen record per framework, and every table keyed by one.

A framework is its backend (``lenet_compare/train/backends/{key}/``: ``backend.py``, which
follows ``train.protocol.Backend``, and any module beside it that only that backend imports) plus
its row here. Everything else that needs to know a framework (the params schema's list, the
command lines' choices, the reports' names and colours, the benchmark's variants, the saved
model's file) reads it from this module. This module imports no framework, so every process may
import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lenet_compare.core import article

# The benchmark's variants of a framework's training (bench/training.py): "plain" and "ours" are
# the backend's Trainer with train.fast false and true; "article" runs the article's own code
# (its framework's: core.article.PAIR[0]).
PLAIN, OURS, ARTICLE = "plain", "ours", "article"


@dataclass(frozen=True)
class Framework:
    """What the framework-free code knows of one framework."""

    key: str  # in params.yaml's frameworks, the paths and the engines' wildcards
    name: str  # in messages and reports: "TensorFlow/Keras"
    short: str  # in the headline's differences: "TF"
    title: str  # in the report's title: "TensorFlow"
    color: str  # in every figure
    model_file: str  # the saved model inside data/models/{key}/seed{seed}/
    # The benchmark: what each variant of the training is, in the order measured, and which
    # variants the fast one is compared with (its speed-ups).
    variants: dict[str, str] = field(default_factory=dict)
    baselines: tuple[str, ...] = (PLAIN,)
    # The pip distributions whose versions the benchmark records (the framework's own libraries).
    packages: tuple[str, ...] = ()
    # In the default study (params.yaml's frameworks): False for a reference that only checks.
    default: bool = True

    @property
    def backend_module(self) -> str:
        """The module that implements train.protocol.Backend for this framework."""
        return f"lenet_compare.train.backends.{self.key}.backend"

    @property
    def backend_dir(self) -> str:
        """The backend's folder, relative to the repository: a job's own code, for both engines."""
        return f"src/lenet_compare/train/backends/{self.key}"


_FAST = "the pipeline's fast path (Trainer with train.fast: true)"

REGISTRY: tuple[Framework, ...] = (
    Framework(
        key="torch",
        name="PyTorch",
        short="PT",
        title="PyTorch",
        color="#D55E00",  # vermillion (Okabe-Ito: distinct in every kind of colour blindness)
        model_file="model.pt",
        variants={
            # The article's code is PyTorch's (bench/training.py: ArticleLoop).
            ARTICLE: "the article's code: torchvision FashionMNIST + ToTensor + DataLoader(batch "
            f"{article.BATCH_SIZE}, shuffle=False), .to(device) per batch, "
            f"Adam(lr={article.as_written(article.LR)}), CrossEntropyLoss",
            PLAIN: "plain PyTorch loop: whole set as one resident tensor, index_select minibatches, "
            "eager step, default Adam (Trainer with train.fast: false)",
            OURS: _FAST,
        },
        baselines=(PLAIN, ARTICLE),
        packages=("torch", "torchvision"),
    ),
    Framework(
        key="tensorflow",
        name="TensorFlow/Keras",
        short="TF",
        title="TensorFlow",
        color="#0072B2",  # blue
        model_file="model.keras",
        variants={
            PLAIN: "plain Keras: model.fit with defaults, steps_per_execution=1 (Trainer with train.fast: false)",
            OURS: _FAST,
        },
        packages=("tensorflow", "keras"),
    ),
    Framework(
        key="jax",
        name="JAX",
        short="JAX",
        title="JAX",
        color="#009E73",  # bluish green
        model_file="model.npz",
        variants={
            PLAIN: "plain JAX: one nnx.jit train step per minibatch (Trainer with train.fast: false)",
            OURS: "the pipeline's fast path: several steps per compiled call (Trainer with train.fast: true)",
        },
        packages=("jax", "jaxlib", "flax", "optax"),
    ),
    Framework(
        key="numpy",
        name="NumPy float64 reference",
        short="NP",
        title="a NumPy reference",
        color="#CC79A7",  # reddish purple
        model_file="model.npz",
        variants={PLAIN: "the float64 NumPy reference (train.fast has no effect)"},
        baselines=(),
        packages=("numpy",),
        default=False,
    ),
)

BY_KEY: dict[str, Framework] = {f.key: f for f in REGISTRY}
FRAMEWORKS: tuple[str, ...] = tuple(BY_KEY)
# How people name them, in messages and reports.
FRAMEWORK_NAMES: dict[str, str] = {f.key: f.name for f in REGISTRY}
DEFAULT_FRAMEWORKS: tuple[str, ...] = tuple(f.key for f in REGISTRY if f.default)


def get(key: str) -> Framework:
    """The registry's row of framework ``key``; a ValueError naming the known ones otherwise."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown framework {key!r}; known: {', '.join(FRAMEWORKS)}") from None


def name(key: str) -> str:
    """The framework's name for people; an unknown key (a test's made-up framework) as it is."""
    return BY_KEY[key].name if key in BY_KEY else key
