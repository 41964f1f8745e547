"""Step `prepare`: parse and validate the raw IDX files, normalize once, split, write the cache."""

from pathlib import Path

from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.core.config import load_params
from lenet_compare.data.dataset import prepare, save_prepared


def main(args) -> None:
    data = load_params(args.params)["data"]
    arrays, meta = prepare(args.raw_dir, data)
    save_prepared(args.out, arrays, meta)
    write_json(args.summary, meta)
    cli.log.info(
        "wrote %s: %d train, %d val, %d test images (%s)",
        args.out,
        *meta["sizes"].values(),
        data["normalize"],
    )


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--raw-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the prepared .npz cache")
    p.add_argument("--summary", type=Path, required=True, help="JSON summary (sizes, constants, checksums)")
    cli.run(main, p.parse_args())
