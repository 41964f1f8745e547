"""Load params.yaml and validate it against the JSON schema, with messages a user can act on.

Snakemake calls this at parse time and every step calls it again on start, because DVC runs
the steps directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lenet_compare.core import article
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.core.paths import SCHEMA
from lenet_compare.core.spec import LeNetSpec

N_TRAIN = 60_000  # images in the Fashion-MNIST training set
N_TEST = 10_000


def load_schema() -> dict:
    """The params schema, with the frameworks it accepts taken from the registry (core.frameworks)."""
    with open(SCHEMA, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    schema["properties"]["frameworks"]["items"] = {"enum": list(FRAMEWORKS)}
    return schema


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params file; raise PipelineError naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PipelineError(f"cannot read {path}: {e.strerror}") from e
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PipelineError(f"{path} is not valid YAML: {e}") from e
    validate_params(params, source=str(path))
    return params


def validate_params(params: Any, source: str = "params.yaml") -> None:
    """Check ``params`` against the schema and the rules a schema cannot express."""
    if not isinstance(params, dict):
        raise PipelineError(f"{source} must be a mapping of keys to values, got {params!r}")
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = _cross_field_problems(params)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PipelineError(f"invalid params in {source}:\n{listing}")


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _allowed(schema: dict) -> str:
    """Say in words what a schema node allows."""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return f"exactly {schema['const']!r}"
    parts = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        parts.append(" or ".join("null" if t == "null" else t for t in types))
    for word, text in (
        ("minimum", ">= {}"),
        ("exclusiveMinimum", "> {}"),
        ("maximum", "<= {}"),
        ("exclusiveMaximum", "< {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if word in schema:
            parts.append(text.format(schema[word]))
    if "description" in schema:
        parts.append(f"({schema['description']})")
    return " ".join(parts) or "see workflow/schemas/params.schema.yaml"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error)
    if error.validator == "additionalProperties":
        return f"{key}: {error.message}; remove or correct the key"
    if error.validator == "required":
        return f"{key}: {error.message}"
    return f"{key} = {error.instance!r} is not allowed: {error.message}; allowed: {_allowed(error.schema)}"


def _cross_field_problems(params: dict) -> list[str]:
    """Rules that relate several keys; run only once each key is valid on its own."""
    problems = []
    data, model, train = params["data"], params["model"], params["train"]
    pool = data["limit_train"] or N_TRAIN
    if data["val_size"] >= pool:
        problems.append(
            f"data.val_size = {data['val_size']} must be smaller than the training set "
            f"({pool} images, data.limit_train = {data['limit_train']})"
        )
    elif train["batch_size"] > pool - data["val_size"]:
        problems.append(
            f"train.batch_size = {train['batch_size']} is larger than the training split "
            f"({pool - data['val_size']} images after holding out data.val_size = {data['val_size']})"
        )
    if len(model["conv_padding"]) != len(model["conv_channels"]):
        problems.append(
            f"model.conv_padding = {model['conv_padding']} needs one entry per conv layer "
            f"(model.conv_channels = {model['conv_channels']})"
        )
    else:
        # core/spec.py is the one place that knows the network's geometry.
        try:
            _ = LeNetSpec.from_params(model).conv_layers  # raises when a layer leaves no pixels
        except ValueError as e:
            problems.append(f"model: {e}; use a smaller model.kernel_size or more model.conv_padding")
    if train["xla"] and train["deterministic"]:
        # Keras turns jit_compile off (with only a warning) under TensorFlow's op determinism,
        # since XLA lacks deterministic versions of some ops: the run would not use XLA.
        problems.append(
            "train.xla = true needs train.deterministic = false: Keras does not compile with XLA "
            "under TensorFlow's op determinism"
        )
    return problems + article.config_problems(params)


def check_engine_config(config: dict, params_file: str | Path = "params.yaml") -> None:
    """Snakemake's parse-time check: valid params, and no overrides the steps would not see.

    The steps read params.yaml themselves (DVC runs them directly), so a value given to
    Snakemake with --config or --configfile would silently not reach them.
    """
    validate_params(config, source=f"{params_file} (Snakemake config)")
    on_disk = load_params(params_file)
    if config != on_disk:
        changed = sorted(k for k in set(config) | set(on_disk) if config.get(k) != on_disk.get(k))
        raise PipelineError(
            f"the Snakemake config differs from {params_file} in {', '.join(changed)}: the steps "
            f"read {params_file} itself, so --config / --configfile overrides would be ignored. "
            f"Edit {params_file} instead (or use `dvc exp run -S key=value`)."
        )
