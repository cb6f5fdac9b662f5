"""Training: the generic curriculum trainer and its run records."""
