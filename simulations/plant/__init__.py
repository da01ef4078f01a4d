"""The simulated plant: its model, parameters, faults and its binding to the site's points."""
