"""Accuracy drift against the float model: measures, profiles, per-layer attribution, diagnosis."""
