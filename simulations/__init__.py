"""The simulated reference plant, scenarios, and the closed-loop runner."""
