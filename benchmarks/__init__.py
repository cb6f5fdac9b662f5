"""Speed measurements, one module per subsystem: `python -m benchmarks.bench_<name>` prints its figures.

Unit tests never assert timings (the machines are shared); these scripts are where speed is measured.
"""
