"""What every step's command line shares: logging to the console and a log file, clean errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import FRAMEWORKS

log = logging.getLogger("lenet_compare")


def parser(doc: str, one_run: bool = False) -> argparse.ArgumentParser:
    """A step's command line: its docstring's first line as the description, --params and --log;
    with ``one_run``, also the --framework, --seed and --data of a step that works on one run."""
    p = argparse.ArgumentParser(description=doc.strip().split("\n", 1)[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--log", type=Path, help="also write the log to this file")
    if one_run:
        p.add_argument("--framework", choices=FRAMEWORKS, required=True)
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--data", type=Path, required=True, help="the prepared .npz cache")
    return p


def setup_logging(log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )


def run(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """Run a step; a PipelineError becomes one clear message and exit status 1."""
    setup_logging(args.log)
    try:
        main(args)
    except PipelineError as e:
        log.error("%s", e)
        sys.exit(1)
    except KeyboardInterrupt:
        log.error("interrupted; outputs are written atomically, so nothing half-written was left")
        sys.exit(130)
