"""Status: signed case status updates, issued for our cases and received for our reports.

Owns the responsible side (the next sequence number, signing, one copy per
reporter and per proof chain, catch-up of the history for late joiners) and
the reporter side (only the proven owner may write about our report;
strictly in sequence order, holding updates past a gap).

May use: ``core``, ``store``, ``wire`` (encoding the proofs carried with a
moved item), ``runtime``, ``crypto`` (signing).
"""

from federation.status.issuing import Fanout, Issued, Join, OpenedCase, StatusBook
from federation.status.receiving import ReceivedUpdate, ReceivingFaults

__all__ = [
    "Fanout",
    "Issued",
    "Join",
    "OpenedCase",
    "ReceivedUpdate",
    "ReceivingFaults",
    "StatusBook",
]
