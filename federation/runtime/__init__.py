"""Runtime: process-wide services every layer may use.

The clock (injectable for tests), structured logging, Prometheus metrics and
the crash points reliability tests use. Nothing here knows the protocol.

May use: ``store`` (metrics read queue gauges at scrape time) and third-party
libraries only.
"""

#: Its public names are its modules (imported where used, so that the CLI's
#: use of the clock does not load metrics or storage).
__all__ = ["clock", "faultpoints", "logs", "metrics"]
