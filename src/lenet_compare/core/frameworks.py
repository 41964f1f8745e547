"""The frameworks this project compares, by the names used in params.yaml, paths and wildcards."""

FRAMEWORKS = ("torch", "tensorflow")
