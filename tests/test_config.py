"""params.yaml validation: bad values stop everything with a message naming key, value and rule."""

import pytest
import yaml
from conftest import default_params, tiny_params

from lenet_compare.core.config import check_engine_config, load_params, validate_params
from lenet_compare.core.errors import PipelineError


def test_committed_params_are_valid():
    validate_params(default_params())
    assert default_params()["train"]["epochs"] == 30


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("train.epochs", -1, r"train.epochs = -1 is not allowed: .*allowed: integer >= 1"),
        ("frameworks", ["torch", "mxnet"], r"frameworks.1 = 'mxnet' is not allowed.*'tensorflow', 'jax'"),
        ("data.normalize", "minmax", r"data.normalize = 'minmax' .*one of 'unit', 'standardize'"),
        ("train.device", "gpu", r"train.device = 'gpu' .*one of 'auto', 'cpu', 'cuda'"),
        ("data.val_size", "5000", r"data.val_size = '5000' .*allowed: integer >= 1"),
        ("data.limit_train", 70000, r"data.limit_train = 70000 .*<= 60000"),
        ("seeds", [], r"seeds = \[\] .*at least 1 items"),
        ("data.sources", [], r"data.sources = \[\] .*at least 1 items"),
        ("train.xla", "auto", r"train.xla = 'auto' is not allowed: .*boolean"),
        ("scheduling.gpu_wait_seconds", 0, r"scheduling.gpu_wait_seconds = 0 is not allowed: .*> 0"),
        ("report.equivalence_margin", -1.0, r"report.equivalence_margin = -1.0 is not allowed: .*> 0"),
    ],
)
def test_bad_values_name_key_value_and_rule(key, value, expected):
    with pytest.raises(PipelineError, match=expected):
        validate_params(tiny_params(**{key: value}))


def test_unknown_key_is_named():
    params = tiny_params()
    params["train"]["epoch"] = 3
    with pytest.raises(PipelineError, match=r"train: Additional properties are not allowed \('epoch' was unexpected\)"):
        validate_params(params)


def test_val_size_must_leave_training_images():
    with pytest.raises(
        PipelineError, match=r"data.val_size = 5000 must be smaller than the training set \(5000 images"
    ):
        validate_params(tiny_params(**{"data.val_size": 5000}))


def test_batch_larger_than_training_split():
    with pytest.raises(PipelineError, match=r"train.batch_size = 4001 is larger than the training split \(4000 images"):
        validate_params(tiny_params(**{"train.batch_size": 4001}))


def test_padding_per_conv_layer():
    with pytest.raises(PipelineError, match="model.conv_padding = \\[2\\] needs one entry per conv layer"):
        validate_params(tiny_params(**{"model.conv_padding": [2]}))


def test_kernel_too_large_for_the_image():
    with pytest.raises(PipelineError, match=r"model: conv2 leaves no pixels.*smaller model.kernel_size"):
        validate_params(tiny_params(**{"model.kernel_size": 13, "model.conv_padding": [0, 0]}))


def test_malformed_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(PipelineError, match="params.yaml is not valid YAML"):
        load_params(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(path)


def test_snakemake_overrides_that_steps_would_not_see_are_refused(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    monkeypatch.chdir(tmp_path)
    check_engine_config(tiny_params())
    with pytest.raises(PipelineError, match="differs from params.yaml in train.*Edit params.yaml"):
        check_engine_config(tiny_params(**{"train.epochs": 5}))
