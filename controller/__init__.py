"""heatctl's controller: configuration, the pure control step, and the runtime around it."""

__version__ = "0.1.0"
