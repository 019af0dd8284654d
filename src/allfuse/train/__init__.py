"""Training: the loop, distributed set-up, optimizer, EMA and checkpoints."""
