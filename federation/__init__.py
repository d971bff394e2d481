"""hotline-federation: a node of the Hotline Federation Protocol (HFP v1)."""

__version__ = "0.1.0"
