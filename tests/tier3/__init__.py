"""Tier 3: the generated images and compose stacks built and run in a real Docker engine."""
