"""Generated protobuf and gRPC stubs for the faas.v1 API (by `make proto`; do not edit)."""
