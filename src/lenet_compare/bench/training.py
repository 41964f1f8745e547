"""Training and evaluation speed of one framework, measured in a process of its own.

Run as ``python -m lenet_compare.bench.training --framework torch --mode timing ...``; the
benchmark (workflow/scripts/benchmark.py) starts one such process per framework and mode, since
torch and tensorflow in one process crash. Three modes:

- ``timing``: every variant of the framework's training in one process. Each variant first
  trains warm-up epochs (tracing, allocator, caches), then the variants take turns, one epoch
  each, for ``--repeats`` rounds (A, B, C, A, B, C, ...), so a slow spell of a shared machine
  hits every variant alike. Writes every epoch's seconds; medians are taken by
  lenet_compare.bench.report.
- ``memory``: one variant alone, from a fresh process: load its data, train one epoch, report
  the process's peak resident memory (VmHWM) and peak GPU memory. Alone, because a process's
  peak RSS covers everything it ever held: in the timing process it would count every variant's
  data.
- ``eval``: the evaluate step's inference timing (lenet_compare.evaluate.inference_timing, the same code
  as workflow/scripts/evaluate.py) on a model saved by the timing process, loaded the way the
  evaluate step loads it (on the CPU).

Variants (each framework's, in the order measured, with their descriptions: the registry's
``variants``, lenet_compare.core.frameworks): ``plain`` and ``ours`` are the backend's Trainer with
``train.fast`` false / true (shared data order and shared initial weights, as the pipeline trains).
``article`` (the framework whose code the article is, core.article.PAIR[0]: PyTorch) is the
article's code: torchvision's FashionMNIST dataset with ``ToTensor`` and
``DataLoader(shuffle=False)``, the classic loop (lenet_compare.core.article's learning rate).

This module is the child process's program; lenet_compare.bench.measure starts it from the
benchmark's own (framework-free) process. It imports no framework at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lenet_compare.core import article, cli, frameworks
from lenet_compare.core.atomic import write_json
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import ARTICLE
from lenet_compare.data.dataset import load_prepared
from lenet_compare.data.fashion_mnist import FILES as RAW_FILES
from lenet_compare.train import init_weights

BENCH_SEED = 0  # the weights and the order do not change the speed; one seed for every variant


def peak_rss_bytes() -> int:
    """Peak resident memory of this process: VmHWM (the current program's own high-water mark).

    ru_maxrss could also count the parent's memory at the fork before exec; VmHWM cannot.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def load_images(cache: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n of x_train + x_val: the 60,000 training images of Fashion-MNIST, prepared."""
    arrays, _ = load_prepared(cache)
    x = np.concatenate([arrays["x_train"], arrays["x_val"]])
    y = np.concatenate([arrays["y_train"], arrays["y_val"]])
    if n > len(y):
        raise PipelineError(f"--images {n} is more than the {len(y)} training images in {cache}")
    return np.ascontiguousarray(x[:n]), np.ascontiguousarray(y[:n])


@contextlib.contextmanager
def torchvision_root(raw_dir: Path) -> Iterator[Path]:
    """A temporary torchvision root: ``FashionMNIST/raw/`` with the decompressed IDX files.

    torchvision's ``_check_exists`` only checks that the decompressed files exist (no md5), so
    the dataset loads them without trying to download.
    """
    with tempfile.TemporaryDirectory(prefix="torchvision-") as tmp:
        raw = Path(tmp) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for name in RAW_FILES:
            src = Path(raw_dir) / name
            try:
                with gzip.open(src, "rb") as fin, open(raw / name.removesuffix(".gz"), "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            except (OSError, EOFError) as e:
                raise PipelineError(f"cannot decompress {src}: {e}; rerun the download step") from e
        yield Path(tmp)


def variants(key: str) -> tuple[str, ...]:
    """The benchmark's variants of framework ``key``, in the order measured (the registry's)."""
    return tuple(frameworks.get(key).variants)


class ArticleLoop:
    """The article's PyTorch training loop (its data pipeline and step), on the spec's model.

    Article-specific code: it runs with the backend of the article's PyTorch (core.article.PAIR[0])
    and calls that backend's ``build_model`` and ``load_canonical``, beyond train.protocol.Backend.
    """

    def __init__(self, backend, spec, train: dict, device: str, init: dict, root: Path, n: int):
        import torch  # the article's framework (core.article.PAIR[0]); only this variant imports it here
        from torch.utils.data import DataLoader, Subset
        from torchvision import datasets, transforms

        self.torch, self.device = torch, torch.device(device)
        dataset = datasets.FashionMNIST(root, train=True, transform=transforms.ToTensor(), download=False)
        if n < len(dataset):
            dataset = Subset(dataset, range(n))
        elif n > len(dataset):
            raise PipelineError(f"--images {n} is more than torchvision's {len(dataset)} training images")
        self.loader = DataLoader(dataset, batch_size=train["batch_size"], shuffle=False)
        self.model = backend.build_model(spec)
        backend.load_canonical(self.model, init)  # same start as the other variants (speed does not depend on it)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=article.LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def train_epoch(self, epoch: int) -> tuple[float, float, float]:
        self.model.train()
        start = time.perf_counter()
        running_loss, correct, total = 0.0, 0, 0
        for images, labels in self.loader:
            images, labels = images.to(self.device), labels.to(self.device)
            outputs = self.model(images)
            loss = self.loss_fn(outputs, labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item() * labels.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        return running_loss / total, correct / total, time.perf_counter() - start

    def peak_gpu_memory_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return self.torch.cuda.max_memory_allocated(self.device) / 2**20

    def details(self) -> dict:
        return {"train_path": "torchvision dataset + DataLoader(shuffle=False), classic loop", "num_workers": 0}


class TrainerVariant:
    """The backend's Trainer, plain (train.fast false) or ours (true), on the given images."""

    def __init__(self, backend, spec, train: dict, device: str, init: dict, fast: bool, x, y):
        train = {**train, "fast": fast, "order": "shared", "init": "shared"}
        self.trainer = backend.Trainer(spec, train, BENCH_SEED, device, init)
        self.trainer.set_training_data(x, y)

    def train_epoch(self, epoch: int) -> tuple[float, float, float]:
        return self.trainer.train_epoch(epoch)

    def peak_gpu_memory_mb(self) -> float | None:
        return self.trainer.peak_gpu_memory_mb()

    def details(self) -> dict:
        return self.trainer.details()


def make_variant(name: str, backend, spec, train: dict, device: str, args, stack: contextlib.ExitStack):
    init = init_weights.initial_weights(spec, BENCH_SEED)
    if name == ARTICLE:
        if args.framework != article.PAIR[0]:
            raise PipelineError(f"the {ARTICLE} variant is {article.PAIR[0]}'s code, not {args.framework}'s")
        root = stack.enter_context(torchvision_root(args.raw_dir))
        return ArticleLoop(backend, spec, train, device, init, root, args.images)
    x, y = load_images(args.cache, args.images)
    return TrainerVariant(backend, spec, train, device, init, name == frameworks.OURS, x, y)


def setup(args):
    """Import the framework, configure it as the train step does; (backend, spec, train, device, name)."""
    from lenet_compare.core.config import load_params
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train.devices import resolve_device
    from lenet_compare.train.import_backend import import_backend
    from lenet_compare.train.job import check_can_run

    params = load_params(args.params)
    train, spec = params["train"], LeNetSpec.from_params(params["model"])
    backend = import_backend(args.framework)
    device = resolve_device(train["device"])
    check_can_run(args.framework, backend, device, train)
    device, device_name = backend.configure(device, train["deterministic"], train["tf32"], BENCH_SEED)
    return backend, spec, train, device, device_name


def framework_record(args, backend, device: str, device_name: str) -> dict:
    return {
        "framework": args.framework,
        "framework_version": backend.VERSION,
        "device": device,
        "device_name": device_name,
        "images": args.images,
    }


def run_timing(args) -> dict:
    backend, spec, train, device, device_name = setup(args)
    names = variants(args.framework)
    descriptions = frameworks.get(args.framework).variants
    record = framework_record(args, backend, device, device_name)
    record.update(batch_size=train["batch_size"], warmup_epochs=args.warmup, repeats=args.repeats, variants={})
    with contextlib.ExitStack() as stack:
        running = {name: make_variant(name, backend, spec, train, device, args, stack) for name in names}
        epochs = dict.fromkeys(names, 0)
        results: dict[str, dict[str, Any]] = {
            name: {"description": descriptions[name], "warmup_seconds": [], "seconds": []} for name in names
        }

        def one_epoch(name: str) -> float:
            epochs[name] += 1
            loss, acc, seconds = running[name].train_epoch(epochs[name])
            cli.log.info(
                "%s %s epoch %d: %.3f s (loss %.4f, accuracy %.4f)",
                args.framework,
                name,
                epochs[name],
                seconds,
                loss,
                acc,
            )
            return seconds

        for name in names:
            for _ in range(args.warmup):
                results[name]["warmup_seconds"].append(one_epoch(name))
        run_order = []
        for _ in range(args.repeats):
            for name in names:
                results[name]["seconds"].append(one_epoch(name))
                run_order.append(name)
        for name in names:
            results[name]["details"] = running[name].details()
            results[name]["peak_gpu_memory_mb_shared_process"] = running[name].peak_gpu_memory_mb()
        record["variants"] = results
        record["run_order"] = run_order
        if args.save_model is not None:
            # The model the eval mode times (its weights do not change its speed): the fast path's,
            # or the plain Trainer's for a framework without one.
            running[frameworks.OURS if frameworks.OURS in running else frameworks.PLAIN].trainer.save(args.save_model)
    return record


def run_memory(args) -> dict:
    backend, spec, train, device, device_name = setup(args)
    record = framework_record(args, backend, device, device_name)
    with contextlib.ExitStack() as stack:
        variant = make_variant(args.variant, backend, spec, train, device, args, stack)
        _, _, seconds = variant.train_epoch(1)
        record.update(
            variant=args.variant,
            epoch_seconds=seconds,
            peak_rss_bytes=peak_rss_bytes(),
            peak_gpu_memory_mb=variant.peak_gpu_memory_mb(),
        )
    cli.log.info(
        "%s %s: peak RSS %.0f MiB after one epoch", args.framework, args.variant, record["peak_rss_bytes"] / 2**20
    )
    return record


def run_eval(args) -> dict:
    from lenet_compare.core.config import load_params
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.evaluate import inference_timing
    from lenet_compare.train.import_backend import import_backend
    from lenet_compare.train.trainer import load_for_inference

    spec = LeNetSpec.from_params(load_params(args.params)["model"])
    backend = import_backend(args.framework)
    model = load_for_inference(backend, args.save_model, spec)  # the evaluate step's loading: CPU
    x_test = load_prepared(args.cache)[0]["x_test"]
    timing = inference_timing.measure(args.framework, backend.inference_paths(model), x_test, spec)
    cli.log.info(
        "%s inference, fastest idiomatic call: %.0f images/s at batch %d, %.2f ms per single image",
        args.framework,
        timing["inference_images_per_second"],
        max(inference_timing.BATCH_SIZES),
        timing["latency_ms_single_image"],
    )
    return {"framework": args.framework, "framework_version": backend.VERSION, "device": "cpu", **timing}


MODES = {"timing": run_timing, "memory": run_memory, "eval": run_eval}


def main(args) -> None:
    write_json(args.out, MODES[args.mode](args))


def arg_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--framework", choices=frameworks.FRAMEWORKS, required=True)
    p.add_argument("--mode", choices=tuple(MODES), required=True)
    p.add_argument("--variant", help="memory mode: the variant to train alone")
    p.add_argument("--cache", type=Path, required=True, help="the prepared .npz cache")
    p.add_argument("--raw-dir", type=Path, required=True, help="the raw .gz files (for torchvision)")
    p.add_argument("--images", type=int, default=60000, help="training images per epoch")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per variant first")
    p.add_argument("--save-model", type=Path, help="timing: save the fast path's model here; eval: load it")
    p.add_argument("--out", type=Path, required=True, help="JSON result")
    return p


if __name__ == "__main__":
    parsed = arg_parser().parse_args()
    if parsed.mode == "memory" and parsed.variant not in variants(parsed.framework):
        arg_parser().error(f"--mode memory needs --variant, one of {', '.join(variants(parsed.framework))}")
    if parsed.mode == "eval" and parsed.save_model is None:
        arg_parser().error("--mode eval needs --save-model (the folder the timing mode saved the model to)")
    cli.run(main, parsed)
