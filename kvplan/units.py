"""Byte units, defined once.

``GIB`` is 2^30 bytes (a gibibyte): every ``_gib`` field and column in kvplan uses it.
Example: a 64 MiB KV block -> 64 * 2**20 / GIB = 0.0625 GiB; 16 blocks make 1 GiB.
"""

GIB = 1 << 30
"""Bytes in one GiB (2^30)."""
