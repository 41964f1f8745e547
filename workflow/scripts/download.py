"""Step `download`: fetch the four Fashion-MNIST .gz files, verified, into data/raw/."""

from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.core.config import load_params
from lenet_compare.data.download import fetch_all


def main(args) -> None:
    data = load_params(args.params)["data"]
    provenance = fetch_all(
        data["sources"], args.out_dir, timeout=data["download_timeout"], retries=data["download_retries"]
    )
    write_json(args.provenance, provenance)
    cli.log.info("wrote %s and %s", args.out_dir, args.provenance)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--out-dir", required=True, help="folder for the four .gz files")
    p.add_argument("--provenance", required=True, help="JSON record of where each file came from")
    cli.run(main, p.parse_args())
