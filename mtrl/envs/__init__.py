"""Meta-World benchmarks (MT1, MT10, MT25, MT50) as vector envs with one-hot task ids."""
