"""Where the project's own files live, found from this package's location."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # src/lenet_compare/core/paths.py
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
