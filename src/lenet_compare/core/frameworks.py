"""The frameworks this project compares, by the names used in params.yaml, paths and wildcards."""

FRAMEWORKS = ("torch", "tensorflow", "jax")
# How people name them, in messages and reports. "jax" (train/jax_backend.py) is known to the steps'
# command lines before params.yaml's schema lets the pipeline train it; the reports already compare
# any number of frameworks (and their tests use a made-up third one).
FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow/Keras", "jax": "JAX"}
