"""Plain-Python reference implementations the tests compare the compiled product with.

Each module registers (``reference.policy_base.register_eviction``) the reference class of
one product policy: a plain version of the published algorithm with the product's
pinned-key rules. tests/test_policies_pins.py fails for a product policy that has none
(docs/policies.md, "Adding a policy").
"""

from reference import arc, belady, fifo, lfu, lru, s3fifo  # noqa: F401  (registers)
from reference.policy_base import FutureUses, eviction_class, make_eviction

__all__ = ["FutureUses", "eviction_class", "make_eviction"]
