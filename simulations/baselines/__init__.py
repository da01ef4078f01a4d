"""Baseline controllers that heatctl is compared against."""
