"""How many tokens a server's KV cache holds, and so how many requests of full length fit.

vLLM publishes its cache configuration on `/metrics` as the info gauge
`vllm:cache_config_info`, whose labels include what the engine sized at start:
`kv_cache_size_tokens` and `kv_cache_max_concurrency` (the same figures its log prints once,
"CPU KV cache size: 46,592 tokens, Maximum concurrency for 8,192 tokens per request: 5.69x").
They follow from the KV-cache setting (`VLLM_CPU_KVCACHE_SPACE` on CPU,
`--gpu-memory-utilization` on GPU), which module 1 varies to show it.

    kv_capacity(srv)        # KVCapacity(tokens=46592, per_request=8192, max_concurrency=5.69)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..connect import Connection
from ..errors import LabError

if TYPE_CHECKING:
    from ..server import Server

INFO = "vllm:cache_config_info"


@dataclass(frozen=True)
class KVCapacity:
    tokens: int
    """Tokens the KV cache holds, over all running requests."""
    per_request: int
    """The request length vLLM assumed (the server's max model length)."""
    max_concurrency: float
    """How many requests of that full length fit at once."""


def cache_config(metrics_text: str) -> dict[str, str]:
    """The labels of `vllm:cache_config_info` in a /metrics text ({} when it is not there)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == INFO:
                return dict(sample.labels)
    return {}


def capacity_from_metrics(metrics_text: str, max_model_len: int) -> KVCapacity:
    """The capacity in a /metrics text of a server whose max model length is `max_model_len`."""
    labels = cache_config(metrics_text)
    try:
        tokens = int(labels["kv_cache_size_tokens"])
        concurrency = float(labels["kv_cache_max_concurrency"])
    except (KeyError, ValueError) as exc:
        raise LabError(
            f"/metrics has no KV-cache size ({INFO} without kv_cache_size_tokens).",
            cause="not a vLLM server of the lab's version (0.32), or its engine has not sized "
                  "its cache yet",
            fix="wait until the server is healthy (server.start returns then), then ask again",
        ) from exc
    return KVCapacity(tokens=tokens, per_request=max_model_len, max_concurrency=concurrency)


def kv_capacity(target: Server | str) -> KVCapacity:
    """The KV-cache capacity of a running server (a Server or a lab server's name)."""
    conn = Connection.of(target)
    limits = conn.served_models()
    max_model_len = next((v for v in limits.values() if v), None)
    if max_model_len is None:
        raise LabError(f"{conn.label} does not say its max model length (GET /v1/models).",
                       fix="ask a running vLLM server of the lab; `vllm-lab status` lists them")
    return capacity_from_metrics(conn.get("/metrics").text, int(max_model_len))
