"""``python -m conformance``: the same command as ``hfed conformance``."""

from conformance.cli import main

main()
