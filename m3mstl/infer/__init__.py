"""Inference: a trained run applied to a split, one image or whole camera frames.

`predict` (a split into a predictions file; one image; the crop a run expects), `frames`
(the `m3mstl predict` command: detector, landmarks and occlusion per face in camera frames)
and `canthus` (the inner-canthus temperature reading).
"""
