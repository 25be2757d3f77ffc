"""Data: built-in sample images, simulators, k-space operations, datasets and file readers.

Signals for detection tasks (a lesion or line at known locations, ROIs, contrast choice):
:mod:`taskloss.data.signals`.
"""
