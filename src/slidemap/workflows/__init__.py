"""Workflows: what strings the lower layers together (train and score, compare, crossval)."""
