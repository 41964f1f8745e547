"""Step `init`: write one seed's shared initial weights, framework-neutral, as data/init/seed{seed}.npz.

Both frameworks start from these weights when `train.init: shared`, so a difference in results
cannot come from the initialization.

Layout of the .npz (canonical: PyTorch's own names and shapes, float32), for the default spec:

    conv1.weight (6, 1, 5, 5)     (out channels, in channels, kernel height, kernel width): OIHW
    conv1.bias   (6,)
    conv2.weight (16, 6, 5, 5)    OIHW
    conv2.bias   (16,)
    fc1.weight   (120, 400)       (out, in); input c*H*W + h*W + w of the last pooled feature
                                  maps (C, H, W) = (16, 5, 5), flattened channel-first
    fc1.bias     (120,)
    fc2.weight   (84, 120)        (out, in)
    fc2.bias     (84,)
    fc3.weight   (10, 84)         (out, in): the output layer (logits)
    fc3.bias     (10,)
    meta         a JSON string: seed, model spec, parameter count, layout, distribution

Other specs have conv{i} for each entry of model.conv_channels and fc{j} for each entry of
model.hidden plus the output layer. PyTorch loads the arrays as its state_dict; Keras
transposes conv kernels OIHW -> HWIO, dense kernels to (in, out) and reorders fc1's inputs from
(C, H, W) to its channel-last (H, W, C) flatten order (lenet_compare.core.spec.to_channels_last).

Distribution: PyTorch's defaults for Conv2d and Linear, which for weights and biases alike are
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in channels * k * k (conv) or in (dense); drawn in
float64 with numpy.random.default_rng([seed, 1]) in the order above, rounded to float32
(lenet_compare.train.init_weights.initial_weights).
"""

from pathlib import Path

from lenet_compare.core import cli
from lenet_compare.core.config import load_params
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.train.init_weights import save_initial_weights


def main(args) -> None:
    spec = LeNetSpec.from_params(load_params(args.params)["model"])
    save_initial_weights(args.out, spec, args.seed)
    cli.log.info("wrote %s: %d parameters for seed %d", args.out, spec.n_parameters, args.seed)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="the .npz of initial weights")
    cli.run(main, p.parse_args())
