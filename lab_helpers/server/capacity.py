"""What vLLM says about its KV cache at start: how many tokens fit, and so how many requests.

vLLM logs one line per start (CPU and GPU alike), e.g.
`CPU KV cache size: 46,592 tokens, Maximum concurrency for 8,192 tokens per request: 5.69x`.
It is the direct consequence of the KV-cache setting (`VLLM_CPU_KVCACHE_SPACE` on CPU,
`--gpu-memory-utilization` on GPU), which module 1 varies to show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(
    r"(?P<device>\w+) KV cache size: (?P<tokens>[\d,]+) tokens, Maximum concurrency for "
    r"(?P<per_request>[\d,]+) tokens per request: (?P<concurrency>[\d.]+)x")


@dataclass(frozen=True)
class KVCapacity:
    tokens: int
    """Tokens the KV cache holds, over all running requests."""
    per_request: int
    """The request length vLLM assumed (the server's max model length)."""
    max_concurrency: float
    """How many requests of that full length fit at once."""


def kv_capacity(log: str) -> KVCapacity | None:
    """The last capacity line of a server log (None before the engine has sized its cache)."""
    matches = list(_LINE.finditer(log))
    if not matches:
        return None
    m = matches[-1]
    return KVCapacity(tokens=int(m["tokens"].replace(",", "")),
                      per_request=int(m["per_request"].replace(",", "")),
                      max_concurrency=float(m["concurrency"]))
