"""Plots of results and the interactive occlusion explorer."""
