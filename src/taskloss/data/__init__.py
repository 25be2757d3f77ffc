"""Data: built-in sample images, simulators, k-space operations, datasets and file readers."""
