# Shared by every rule: validated params and the file names of DESIGN.md.
import os

from lenet_compare.config import check_engine_config
from lenet_compare.fashion_mnist import FILES as RAW_FILES

# Stops at parse time, naming the bad key, before any job starts.
check_engine_config(config)

RAW = expand("data/raw/{name}", name=RAW_FILES)
PREPARED = "data/prepared/fashion_mnist.npz"


def raw_dir(wildcards, input, output):
    """The folder of the raw .gz files, as the download and prepare steps take it."""
    files = output.raw if "raw" in output.keys() else input.raw
    return os.path.dirname(files[0])
