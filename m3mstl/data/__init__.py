"""Data layer: the TFD68 layout (read, write, validate), importers, splits, torch datasets."""
