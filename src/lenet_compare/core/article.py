"""The article this project answers: its published numbers, its code's settings and the factors its runs differed in.

A widely read article trained LeNet-5 on Fashion-MNIST in Keras and in PyTorch, one run each,
and reported 91.34 % for TensorFlow against 89 % for PyTorch. Its two runs were not the same
experiment: its code differed between the frameworks in six factors (docs/design.md, "The
article's differences"). Every fact about it lives here: the report, the ablation and its report,
the benchmark's article variant and the config's rules for the ablation take them from this module,
and the templates get them passed in (no number of the article is typed in a template).

params.yaml's ``ablation.article`` gives each factor's value in the article's code per
framework, as the ablation trains it; this module says what the article published and how its
code differed, in words.

Imports nothing from the package: config (core) imports it.
"""

from __future__ import annotations

from typing import Any

# The article's two frameworks, in the order of its gap: differences are the second minus the
# first (TensorFlow/Keras minus PyTorch). The comparison report puts this pair first; the
# ablation explains its gap and stays this pair whatever params.yaml's frameworks say.
PAIR = ("torch", "tensorflow")

# Its hyperparameters, the same in both frameworks (params.yaml's defaults follow them).
EPOCHS = 30
BATCH_SIZE = 32
LR = 1e-3

# What its code left at each framework's default, or set differently per framework.
EPS = {"torch": 1e-8, "tensorflow": 1e-7}  # Adam's epsilon: torch.optim.Adam's and Keras's defaults
N_PARAMETERS = {"torch": 61_706, "tensorflow": 107_786}  # second conv padding 0 (valid) / "same"

# How its PyTorch code printed accuracy: an integer-truncated percentage.
TRUNCATED_ACCURACY = "100 * correct // total"

# Its published numbers, one run each. Its PyTorch code printed 100 * correct // total,
# so "89" means an accuracy in [89, 90): kept as an interval, never as the number 89.
PUBLISHED: dict[str, dict[str, Any]] = {
    "torch": {"shown": "89 %", "low": 89.0, "high": 90.0, "how": f"`{TRUNCATED_ACCURACY}`, integer-truncated"},
    "tensorflow": {"shown": "91.34 %", "low": 91.34, "high": 91.34, "how": "two decimals"},
}


def as_written(x: float) -> str:
    """A small setting as code writes it: 1e-3, 1e-8 (where Python prints 0.001, 1e-08)."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


# The factors its two runs differed in, in the order params.yaml's ablation.steps names them
# by default, and what moving each to the controlled protocol changes.
FACTORS = ("accuracy", "head", "eps", "padding", "init", "order")
FACTOR_LABELS = {
    "accuracy": "accuracy reporting (integer-truncated -> exact)",
    "head": "TensorFlow head (softmax + categorical cross-entropy -> logits)",
    "eps": f"Adam epsilon (Keras default {as_written(EPS['tensorflow'])} -> the params' eps)",
    "padding": "second conv padding (same -> valid)",
    "init": "initial weights (native defaults -> shared)",
    "order": "training order (fixed / own shuffle -> shared)",
}

# How its code differed between the frameworks, in words (Markdown), for the report's table
# "What differed in the article": the six factors, then the device and the number of runs.
CODE = {
    "padding": {
        "torch": f"0 (valid): {N_PARAMETERS['torch']:,} parameters",
        "tensorflow": f'"same": {N_PARAMETERS["tensorflow"]:,} parameters',
    },
    "order": {
        "torch": "`DataLoader(shuffle=False)`: the same order every epoch",
        "tensorflow": "`fit` shuffles every epoch",
    },
    "init": {
        "torch": "PyTorch defaults (kaiming-uniform a = sqrt 5, uniform bias)",
        "tensorflow": "Keras defaults (glorot-uniform, zero bias)",
    },
    "head": {"torch": "logits + `CrossEntropyLoss`", "tensorflow": "softmax + `categorical_crossentropy`"},
    "eps": {
        "torch": f"{as_written(EPS['torch'])}, added to the bias-corrected sqrt(v)",
        "tensorflow": f'{as_written(EPS["tensorflow"])} ("epsilon hat")',
    },
    "accuracy": {"torch": f"`{TRUNCATED_ACCURACY}`: integer-truncated", "tensorflow": "two decimals"},
    "device": {"torch": "the code never moves to a GPU", "tensorflow": "Keras uses a GPU when present"},
    "runs": {"torch": "one", "tensorflow": "one"},
}


def gap() -> dict:
    """The published TensorFlow-minus-PyTorch gap in points, as the interval its numbers allow."""
    tf, pt = PUBLISHED["tensorflow"], PUBLISHED["torch"]
    # PyTorch in [low, high): the gap is in (tf - high, tf - low].
    return {"low": tf["low"] - pt["high"], "high": tf["high"] - pt["low"], "open_low": pt["high"] > pt["low"]}


def printed_gap() -> float:
    """The gap as the article printed it: 91.34 - 89."""
    return PUBLISHED["tensorflow"]["low"] - PUBLISHED["torch"]["low"]


def config_problems(params: dict) -> list[str]:
    """Cross-field rules for params.yaml's ablation section, which reruns the article's setup.

    config.validate_params calls this: the article's code settings (``ablation.article``) must
    be ones the train code can run, and the seeds it reruns them on must be main seeds.
    """
    problems = []
    ab = params["ablation"]
    extra = sorted(set(ab["seeds"]) - set(params["seeds"]))
    if extra:
        problems.append(
            f"ablation.seeds = {ab['seeds']} has seeds not in seeds = {params['seeds']} ({extra}): its last step "
            "is the main runs, so every ablation seed must be a main seed too"
        )
    missing = [f for f in PAIR if f not in params["frameworks"]]
    if missing:
        problems.append(
            f"frameworks = {params['frameworks']} lacks {', '.join(missing)}: the report answers the article "
            f"and the ablation explains its gap, so its two frameworks ({', '.join(PAIR)}) are always needed"
        )
    if ab["article"]["torch"]["head"] != "logits":
        problems.append("ablation.article.torch.head must be 'logits': a softmax head is only implemented for Keras")
    for fw in PAIR:
        pad = ab["article"][fw]["conv_padding"]
        if len(pad) != len(params["model"]["conv_channels"]):
            problems.append(
                f"ablation.article.{fw}.conv_padding = {pad} needs one entry per conv layer "
                f"(model.conv_channels = {params['model']['conv_channels']})"
            )
    return problems
