#!/usr/bin/env bash
# Make sure the offline source of Fashion-MNIST (Debian's package dataset-fashion-mnist) is there.
# The download step tries the canonical mirrors first and this folder after them; on a machine
# without internet it is the only source. Installs the package when we can (root with apt-get);
# otherwise says how, and lets the download step try the mirrors.
set -euo pipefail
pkg=dataset-fashion-mnist
dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

have_all() { for f in "${files[@]}"; do [ -s "$dir/$f" ] || return 1; done; }

if have_all; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's $pkg (the offline copy of Fashion-MNIST)..."
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null
    fi
    have_all && exit 0
fi
echo "warning: $dir lacks the Fashion-MNIST files; without internet the download step will fail," >&2
echo "         and the tests, which read only this folder, skip every end-to-end test." >&2
echo "         Install them with: sudo apt-get install $pkg" >&2
