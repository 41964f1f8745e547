"""The article's setup and the cumulative steps from it to the controlled protocol (framework-free).

The article's two runs differed in six factors (lenet_compare.core.article.FACTORS).
``ablation.article`` in params.yaml gives each factor's value in its notebook, per framework;
the controlled value is the main protocol's (``model`` / ``train``), logits and exact accuracy.
Step 0 ("article") trains the article's setup; each following step (``ablation.steps``) moves
one more factor to its controlled value in both frameworks. After the last step every factor is controlled, so that
step *is* the main pipeline's runs: it is not trained again.

A step that leaves a framework's training unchanged reuses that framework's run of the
earlier step: ``run_id`` names the first step with the same training, so each distinct training
trains once per seed. A step leaves training unchanged when the framework already had the
controlled value, or when the factor cannot change a trained weight: the accuracy factor only
changes how a result is printed, and Keras's softmax head trains bit for bit like logits (Keras
hands categorical cross-entropy the logits under the softmax, tests/test_ablation.py proves it
on every run of the suite), so only the article's own run trains with the softmax head.
"""

from __future__ import annotations

import copy

ARTICLE = "article"
MAIN = "main"  # run id of the configuration of the main runs (reports/runs/...)


def controlled(params: dict) -> dict:
    """Each factor's controlled value: the main protocol's."""
    return {
        "accuracy": "exact",
        "head": "logits",
        "eps": params["train"]["eps"],
        "padding": list(params["model"]["conv_padding"]),
        "init": params["train"]["init"],
        "order": params["train"]["order"],
    }


def article(params: dict, framework: str) -> dict:
    """Each factor's value in the article's notebook for ``framework``."""
    a = params["ablation"]["article"][framework]
    return {
        "accuracy": a["accuracy"],
        "head": a["head"],
        "eps": a["eps"],
        "padding": list(a["conv_padding"]),
        "init": a["init"],
        "order": a["order"],
    }


def step_names(params: dict) -> list[str]:
    """ "article", then the factors in the order they are moved."""
    return [ARTICLE, *params["ablation"]["steps"]]


def settings(params: dict, framework: str, step: str) -> dict:
    """The factors' values for ``framework`` at ``step``: controlled for the steps done so far."""
    names = step_names(params)
    if step not in names:
        raise ValueError(f"unknown ablation step {step!r}; steps are {names}")
    values = article(params, framework)
    ctrl = controlled(params)
    for factor in names[1 : names.index(step) + 1]:
        values[factor] = ctrl[factor]
    return values


def training_config(params: dict, framework: str, step: str) -> tuple[dict, dict]:
    """(model params, train params) that the train code gets for ``framework`` at ``step``.

    The train params carry one key the main ``train`` section has not: ``head``.
    """
    values = settings(params, framework, step)
    model = copy.deepcopy(params["model"])
    model["conv_padding"] = values["padding"]
    train = copy.deepcopy(params["train"])
    train.update(eps=values["eps"], init=values["init"], order=values["order"], head=values["head"])
    return model, train


def main_training_config(params: dict) -> tuple[dict, dict]:
    model, train = copy.deepcopy(params["model"]), copy.deepcopy(params["train"])
    train["head"] = "logits"
    return model, train


# Train params that change how a run is reported or computed, never its trained weights.
TRAINING_NEUTRAL = ("head",)


def _training(config: tuple[dict, dict]) -> tuple[dict, dict]:
    """What determines the trained weights: the config less its training-neutral keys."""
    model, train = config
    return model, {k: v for k, v in train.items() if k not in TRAINING_NEUTRAL}


def run_id(params: dict, framework: str, step: str) -> str:
    """The run whose results ``framework`` has at ``step``: "main", or the first step that trains the same."""
    training = _training(training_config(params, framework, step))
    if training == _training(main_training_config(params)):
        return MAIN
    for earlier in step_names(params):
        if _training(training_config(params, framework, earlier)) == training:
            return earlier
    raise AssertionError("unreachable: the step itself matches")


def runs_to_train(params: dict, framework: str) -> list[str]:
    """The distinct configurations the ablation trains for ``framework`` (the main runs excluded)."""
    ids = []
    for step in step_names(params):
        rid = run_id(params, framework, step)
        if rid != MAIN and rid not in ids:
            ids.append(rid)
    return ids


def reported_accuracy(correct: int, total: int, how: str) -> float:
    """Accuracy in percent as the article's code would print it: exact, or ``100 * correct // total``."""
    if how == "truncated":
        return float(100 * correct // total)
    return 100 * correct / total
