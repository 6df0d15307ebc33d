"""The error of a bad setting or config file, apart from the settings themselves, so that the config
file reader (`mtrl.config.files`) and the settings (`mtrl.config.settings`) both raise it without
importing each other."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and says what is allowed."""
