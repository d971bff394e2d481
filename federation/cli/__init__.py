"""The ``hfed`` command line."""
