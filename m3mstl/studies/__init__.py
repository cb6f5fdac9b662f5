"""Studies: what the notebooks compare, one module per question.

`comparison` (the main comparison, ablations, paired tests over seeds), `scaling` (input size,
trunk and budget), `camera_frames` (the pipeline on whole frames), `thermometry` (canthus
readings under occlusion), `dataset_summary` (tables about a dataset).
"""
