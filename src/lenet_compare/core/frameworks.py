"""The frameworks this project compares, by the names used in params.yaml, paths and wildcards."""

FRAMEWORKS = ("torch", "tensorflow")
# How people name them, in messages and reports.
FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow/Keras"}
