"""Multi-task soft actor-critic."""
