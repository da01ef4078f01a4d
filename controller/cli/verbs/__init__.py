"""One module per `heatctl` verb."""
