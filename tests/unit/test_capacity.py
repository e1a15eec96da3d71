"""The KV-cache capacity, read from vLLM 0.32's own /metrics (`vllm:cache_config_info`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_helpers.errors import LabError
from lab_helpers.metrics.capacity import cache_config, capacity_from_metrics

# Recorded from the test lab's chat server (tests/data/README.md): 1 GiB of KV cache.
METRICS = (Path(__file__).parents[1] / "data" / "vllm-0.32.0-metrics-after.txt").read_text()


def test_reads_the_engines_figures():
    cap = capacity_from_metrics(METRICS, 8192)
    labels = cache_config(METRICS)
    assert cap.tokens == int(labels["kv_cache_size_tokens"]) > 0
    assert cap.per_request == 8192
    # vLLM's concurrency is the token capacity over the request length.
    assert cap.max_concurrency == pytest.approx(cap.tokens / cap.per_request, abs=0.01)
    # The tokens are the cache's blocks times their size, as the engine allocated them.
    assert cap.tokens == int(labels["num_gpu_blocks"]) * int(labels["block_size"])


def test_a_server_without_the_figures_is_a_clear_error():
    other = "\n".join(line for line in METRICS.splitlines() if "cache_config_info" not in line)
    assert cache_config(other) == {}
    with pytest.raises(LabError) as err:
        capacity_from_metrics(other, 8192)
    assert "kv_cache_size_tokens" in err.value.what and err.value.fix
