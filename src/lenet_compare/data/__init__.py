"""The data steps: download (verified raw .gz files from the mirrors or Debian's package),
IDX parsing, and prepare (the one normalized .npz cache every later step reads)."""
