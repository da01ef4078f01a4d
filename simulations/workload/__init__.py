"""The workload model: interactive services and batch jobs per hardware template (issue 11)."""
