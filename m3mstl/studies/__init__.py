"""Studies: what the notebooks compare, one module per question.

`comparison` (the main comparison, ablations, paired tests over seeds), `scaling` (input size,
trunk and budget), `camera_frames` (the pipeline on whole frames), `thermometry` (canthus
readings under occlusion), `dataset_summary` (tables about a dataset), `inspection` (the profiles
side by side and a look into single runs: stage-1 masks, the classical peer's record, best and
worst test images).
"""
