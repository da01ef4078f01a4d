"""Runners: the closed loop (step + plant in one process) and the daemon on simulated time."""
