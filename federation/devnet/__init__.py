"""A complete local test network on loopback (``hfed devnet``).

Makes every party's keys, certificates and roster in one directory, starts
and stops the node processes, and walks a report through them (the demo and
the smoke test). Test and demo tooling only: nothing of the node imports it.
"""
