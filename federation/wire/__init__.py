"""Wire: where protobuf messages and domain values meet, in both directions.

Owns conversion between the generated ``hfp`` messages and ``core`` values,
the strict decoding rules (unknown fields, embedded media, sizes) and
timestamps.

May use: ``core``, ``crypto`` and generated code.
"""
