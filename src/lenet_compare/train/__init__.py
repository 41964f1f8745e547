"""The init and train steps: shared initial weights, the shared data order, the epoch loop
with its checkpoints and divergence stops, history.csv, which device a job uses and its GPU
claim, and one backend per framework (torch_backend, tensorflow_backend: never both in one
process)."""
