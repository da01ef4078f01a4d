"""The fleet in simulation (issue 12): several sites sharing one batch workload, placed by Slurm's
node weights from each site's value of heat, or kept at home."""
