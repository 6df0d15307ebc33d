"""mtrl: multi-task SAC on Meta-World, the architectures it is compared with, and plasticity probes."""

__version__ = "0.1.0"
