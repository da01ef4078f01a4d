"""Scenarios: short test windows, the year scenarios and their demand/weather profiles."""
