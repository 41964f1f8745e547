"""The backends, one folder per framework: ``{key}/backend.py`` follows train.protocol.Backend, and
any module beside it is that backend's alone (JAX's ``start.py``). Importing a backend imports its
framework and no other (train.import_backend). A job's own code, for both engines, is its
framework's folder, so a change to one framework's backend reruns only that framework's jobs."""
