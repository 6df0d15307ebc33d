"""Run settings: the frozen TrainConfig, strict config files, value parsing, device speed settings."""
