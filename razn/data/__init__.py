"""Data: slides' ground truth (masks, annotations), manifests and synthetic data."""
