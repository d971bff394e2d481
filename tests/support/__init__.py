"""Helpers shared by the test suites (real networks, real gRPC, real SQLite)."""
