"""Deterministic equivalents, one module per system."""
