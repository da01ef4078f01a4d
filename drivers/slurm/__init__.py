"""The Slurm workload driver: reads nodes and queue, drains/resumes, weights, holds/releases, requeues."""
