"""Evaluation: metrics of a run's predictions, paired statistics and summaries over seeds.

`metrics` (NME under named normalisers, CED, occlusion ROC/PR, pose), `stats` (paired tests,
bootstrap and seed-aware intervals), `evaluate` (the `m3mstl evaluate` command).
"""
