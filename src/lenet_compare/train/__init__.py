"""The init and train steps: shared initial weights, the shared data order, the epoch loop
with its checkpoints and divergence stops, history.csv, which device a job uses and its GPU
claim; the backend protocol (protocol.py), what every backend's trainer shares (trainer.py), and
one backend per registered framework (backends/{framework}/: one framework per process)."""
