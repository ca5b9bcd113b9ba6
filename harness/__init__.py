"""The shared harness of the tests and the benchmarks: services, packets, headers and recordings.

Importable from the repository root: pytest puts the root on ``sys.path`` (``pythonpath`` in
``pyproject.toml``), and the benchmarks run as modules from there (``python -m benchmarks.<name>``).
It is not installed with lenscast.
"""
