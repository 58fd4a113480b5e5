"""Training: distributed set-up, EMA, optimisers, checkpoints, reporting and the generic loop."""
