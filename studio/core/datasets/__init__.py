"""Datasets: read files, detect each row's format, render rows with the model's chat template and a loss mask."""
