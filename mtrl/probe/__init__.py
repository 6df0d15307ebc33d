"""Plasticity probes: metrics as pure functions and the probe of a run's checkpoints."""
