"""Outbound side: channels to peer nodes (and, later, the per-peer delivery queues)."""
