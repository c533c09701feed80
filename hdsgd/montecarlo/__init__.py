"""Finite-dimensional Monte Carlo, one module per system."""
