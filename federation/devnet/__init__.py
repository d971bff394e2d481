"""A complete local test network on loopback (``hfed devnet``)."""
