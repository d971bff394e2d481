"""gRPC adapters: servicers, caller authentication and the error translator."""
