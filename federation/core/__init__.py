"""Pure domain core: no I/O, no protobuf, plain typed values in and out."""
