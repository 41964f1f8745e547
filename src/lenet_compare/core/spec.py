"""LeNet-5 from the `model:` section of params.yaml, without any framework.

One spec gives the layer shapes, the flatten size and the parameter count that both
frameworks' models must have, and the canonical weight layout that the shared initial weights
use (see workflow/scripts/init.py). The network, for conv layers i = 1..n and dense layers
j = 1..m (the last one is the output layer, its logits are not activated):

    input (1, 28, 28)
    conv{i}: zero-pad p_i, k x k conv (stride 1) -> activation -> 2x2 pooling (stride 2, floor)
    flatten (channel-first order, see below)
    fc{j}: dense -> activation (all but the last)

Canonical layout (PyTorch's own): ``conv{i}.weight`` (out, in, k, k) "OIHW", ``conv{i}.bias``
(out,), ``fc{j}.weight`` (out, in), ``fc{j}.bias`` (out,), float32. The inputs of ``fc1`` are the
last feature maps flattened channel-first, (C, H, W): input c*H*W + h*W + w. Keras and Flax work
channel-last, so ``to_channels_last`` turns conv kernels into HWIO and reorders fc1's inputs to
(H, W, C); ``from_channels_last`` undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIDE = 28
IN_CHANNELS = 1
POOL = 2  # 2x2 pooling, stride 2


@dataclass(frozen=True)
class ConvLayer:
    name: str
    in_channels: int
    out_channels: int
    padding: int
    side_in: int  # height = width of the input feature maps
    side_conv: int  # after the convolution
    side_out: int  # after pooling


@dataclass(frozen=True)
class LeNetSpec:
    conv_channels: tuple[int, ...]
    kernel_size: int
    conv_padding: tuple[int, ...]
    pooling: str  # avg | max
    activation: str  # relu | tanh | sigmoid
    hidden: tuple[int, ...]
    classes: int

    @classmethod
    def from_params(cls, model: dict) -> LeNetSpec:
        """The spec of a (validated) `model:` section of params.yaml."""
        return cls(
            conv_channels=tuple(model["conv_channels"]),
            kernel_size=model["kernel_size"],
            conv_padding=tuple(model["conv_padding"]),
            pooling=model["pooling"],
            activation=model["activation"],
            hidden=tuple(model["hidden"]),
            classes=model["classes"],
        )

    def as_params(self) -> dict:
        """The `model:` section this spec came from (for run records)."""
        return {
            "conv_channels": list(self.conv_channels),
            "kernel_size": self.kernel_size,
            "conv_padding": list(self.conv_padding),
            "pooling": self.pooling,
            "activation": self.activation,
            "hidden": list(self.hidden),
            "classes": self.classes,
        }

    @property
    def conv_layers(self) -> list[ConvLayer]:
        layers, side, channels = [], IMAGE_SIDE, IN_CHANNELS
        for i, (out, pad) in enumerate(zip(self.conv_channels, self.conv_padding, strict=True)):
            conv = side + 2 * pad - self.kernel_size + 1
            pooled = conv // POOL
            if pooled < 1:
                raise ValueError(f"conv{i + 1} leaves no pixels: side {side}, padding {pad}")
            layers.append(ConvLayer(f"conv{i + 1}", channels, out, pad, side, conv, pooled))
            side, channels = pooled, out
        return layers

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the last pooled feature maps, the input of fc1."""
        last = self.conv_layers[-1]
        return last.out_channels, last.side_out, last.side_out

    @property
    def flatten_size(self) -> int:
        c, h, w = self.feature_shape
        return c * h * w

    @property
    def dense_layers(self) -> list[tuple[str, int, int]]:
        """(name, in, out) of each dense layer, the output layer last."""
        sizes = [self.flatten_size, *self.hidden, self.classes]
        return [(f"fc{j + 1}", sizes[j], sizes[j + 1]) for j in range(len(sizes) - 1)]

    @property
    def layer_names(self) -> list[str]:
        """The canonical names of the layers with weights, in the order of the network."""
        return [conv.name for conv in self.conv_layers] + [name for name, _, _ in self.dense_layers]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical names and shapes, in the order of the network (and of init's draws)."""
        shapes: dict[str, tuple[int, ...]] = {}
        k = self.kernel_size
        for conv in self.conv_layers:
            shapes[f"{conv.name}.weight"] = (conv.out_channels, conv.in_channels, k, k)
            shapes[f"{conv.name}.bias"] = (conv.out_channels,)
        for name, n_in, n_out in self.dense_layers:
            shapes[f"{name}.weight"] = (n_out, n_in)
            shapes[f"{name}.bias"] = (n_out,)
        return shapes

    def fan_in(self, name: str) -> int:
        """Inputs feeding one output unit of the layer that owns parameter ``name``."""
        weight = self.parameter_shapes()[name.rsplit(".", 1)[0] + ".weight"]
        return int(np.prod(weight[1:]))

    @property
    def n_parameters(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.parameter_shapes().values())


def check_weights(spec: LeNetSpec, weights: dict[str, np.ndarray], source: str) -> None:
    """Raise ValueError unless ``weights`` holds exactly the spec's parameters, canonical shapes."""
    expected = spec.parameter_shapes()
    if set(weights) != set(expected):
        raise ValueError(
            f"{source} holds {sorted(weights)}, the model spec needs {sorted(expected)}; "
            "was it written for another model: section?"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise ValueError(f"{source}: {name} has shape {tuple(weights[name].shape)}, the model spec needs {shape}")


def to_channels_last(spec: LeNetSpec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical weights -> the channel-last layout (Keras, Flax): conv kernels HWIO, dense kernels
    (in, out), fc1 rows HWC."""
    out = {}
    c, h, w = spec.feature_shape
    for name, value in weights.items():
        if name.startswith("conv") and name.endswith(".weight"):
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif name == "fc1.weight":
            # (out, C*H*W) -> (out, C, H, W) -> (H, W, C, out) -> (H*W*C, out)
            value = value.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
        elif name.endswith(".weight"):
            value = value.T
        out[name] = np.ascontiguousarray(value)
    return out


def from_channels_last(spec: LeNetSpec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of ``to_channels_last``: Keras layout -> canonical."""
    out = {}
    c, h, w = spec.feature_shape
    for name, value in weights.items():
        if name.startswith("conv") and name.endswith(".weight"):
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif name == "fc1.weight":
            value = value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, c * h * w)
        elif name.endswith(".weight"):
            value = value.T
        out[name] = np.ascontiguousarray(value)
    return out
