"""The lab's CPU default against vLLM's: how many cores vLLM keeps for its scheduler.

    .venv/bin/python benchmarks/cpu_defaults.py [--max-tokens 64] [--runtime auto|podman|local]
                                                [--out benchmarks/results/cpu_defaults.json]

vLLM's CPU backend reserves one core for its scheduler process by default; the lab's
`ServerConfig.server_env()` sets VLLM_CPU_NUM_OF_RESERVED_CPU=0 on machines with few cores
(lab_helpers.server.config.RESERVE_NO_CORE_UP_TO). This starts the old default (reserved 1,
vLLM's own) and the new one (the lab's chat_server("cpu") as is), one after the other, each its
own server on a free port, stopped afterwards. Against each: a warm-up, then 1 request at a time (4
requests) and 16 at once (16 requests), all streamed, temperature 0, `ignore_eos` so every
answer is exactly --max-tokens long. Output tokens/s = completion tokens (server's usage) over
the wall time of the batch; TTFT is client side, first content piece.

Targets: new/old output tokens/s >= 1.1 at 16 concurrent and >= 1.0 at 1; p50 TTFT at 16
concurrent not worse (ratio <= 1.0). The CPU is shared with other work: quote ratios from one
run, and rerun before concluding from a small difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from pathlib import Path

from publish import publish

from lab_helpers import server
from lab_helpers.server.config import RESERVE_NO_CORE_UP_TO, chat_server, usable_cores

QUESTION = "Write a short story about a coyote who orders rockets from ACME Corp."
LEVELS = {1: 4, 16: 16}  # concurrency -> requests
TARGETS = {"tokens_per_s_ratio_at_16_min": 1.1, "tokens_per_s_ratio_at_1_min": 1.0,
           "ttft_p50_ratio_at_16_max": 1.0}


async def one_request(client, model: str, max_tokens: int) -> tuple[float, int]:
    """(TTFT seconds, completion tokens) of one streamed request."""
    began = time.perf_counter()
    ttft = None
    tokens = 0
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=max_tokens,
        temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    async for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].delta.content and ttft is None:
            ttft = time.perf_counter() - began
    assert ttft is not None and tokens > 0, "no tokens streamed"
    return ttft, tokens


async def measure(srv: server.Server, max_tokens: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{srv.base_url}/v1", api_key=srv.api_key, max_retries=0,
                         timeout=600)
    await one_request(client, srv.model_name, max_tokens)  # warm-up
    out = {}
    for concurrency, requests in LEVELS.items():
        began = time.perf_counter()
        results: list[tuple[float, int]] = []
        for start in range(0, requests, concurrency):
            batch = range(start, min(start + concurrency, requests))
            results += await asyncio.gather(*(one_request(client, srv.model_name, max_tokens)
                                              for _ in batch))
        wall = time.perf_counter() - began
        tokens = sum(t for _, t in results)
        out[str(concurrency)] = {
            "requests": requests, "completion_tokens": tokens, "wall_s": round(wall, 2),
            "output_tokens_per_s": round(tokens / wall, 2),
            "ttft_p50_s": round(statistics.median(ttft for ttft, _ in results), 3),
        }
    await client.close()
    return out


def run_variant(label: str, reserved: str | None, runtime: str, max_tokens: int) -> dict:
    config = chat_server("cpu", name=f"bench-{label}", port=server.free_port())
    if reserved is not None:
        config = config.replace(env={"VLLM_CPU_NUM_OF_RESERVED_CPU": reserved})
    env = config.server_env()
    began = time.perf_counter()
    with server.start(config, runtime=runtime) as srv:  # type: ignore[arg-type]
        startup = time.perf_counter() - began
        figures = asyncio.run(measure(srv, max_tokens))
        kind = srv.runtime.kind
    return {"VLLM_CPU_NUM_OF_RESERVED_CPU": env.get("VLLM_CPU_NUM_OF_RESERVED_CPU",
                                                    "(vLLM default: 1)"),
            "runtime": kind, "startup_s": round(startup, 1), "by_concurrency": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--runtime", default="auto", choices=["auto", "podman", "local"])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "cpu_defaults.json")
    args = parser.parse_args()

    old = run_variant("old-default", "1", args.runtime, args.max_tokens)
    new = run_variant("new-default", None, args.runtime, args.max_tokens)
    ratios = {}
    for level in map(str, LEVELS):
        o, n = old["by_concurrency"][level], new["by_concurrency"][level]
        ratios[f"tokens_per_s_ratio_at_{level}"] = round(
            n["output_tokens_per_s"] / o["output_tokens_per_s"], 3)
        ratios[f"ttft_p50_ratio_at_{level}"] = round(n["ttft_p50_s"] / o["ttft_p50_s"], 3)
    report = {
        "benchmark": "cpu_defaults",
        "question": "VLLM_CPU_NUM_OF_RESERVED_CPU: vLLM's default (1) vs the lab's (0 on <= "
                    f"{RESERVE_NO_CORE_UP_TO} cores)",
        "machine": {"usable_cores": usable_cores(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "max_tokens": args.max_tokens,
        "old_default": old,
        "new_default": new,
        "ratios_new_over_old": ratios,
        "targets": TARGETS,
        "targets_met": {
            "tokens_per_s_ratio_at_16_min": ratios["tokens_per_s_ratio_at_16"]
            >= TARGETS["tokens_per_s_ratio_at_16_min"],
            "tokens_per_s_ratio_at_1_min": ratios["tokens_per_s_ratio_at_1"]
            >= TARGETS["tokens_per_s_ratio_at_1_min"],
            "ttft_p50_ratio_at_16_max": ratios["ttft_p50_ratio_at_16"]
            <= TARGETS["ttft_p50_ratio_at_16_max"],
        },
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "note": "one run; both servers measured in the same run, one after the other; a high "
                "load average means other work shared the CPU and the figures are not quotable",
    }
    publish(report, args.out)


if __name__ == "__main__":
    main()
