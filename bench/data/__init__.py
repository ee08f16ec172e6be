"""Datasets, clip sampling, transforms and loaders."""
