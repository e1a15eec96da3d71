"""What every setting of a server does: one row per flag and environment variable it runs with.

    from lab_helpers.settings_table import settings_table
    settings_table(chat_server("cpu"))      # flag, value, what it does, lab field, original lab

The rows come from the config's own command line (`ServerConfig.vllm_args()`) and environment
(`ServerConfig.server_env()`), so the table cannot drift from what runs; only the descriptions
are written here, and a unit test fails when a command holds a flag without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LabError
from .keyguard import KEY_FILE_ENV

if TYPE_CHECKING:
    import pandas as pd

    from .config import ServerConfig


class UndocumentedSetting(LabError, KeyError):
    """A flag or variable in the command that the lab has no description for."""


@dataclass(frozen=True)
class Setting:
    what: str
    """What it does, and why the lab sets it so."""
    field: str
    """The ServerConfig field (or who sets it)."""
    original: str
    """The matching knob of the original workshop, and how the lab differs."""


FLAGS: dict[str, Setting] = {
    "--model": Setting("The weights to serve: a local directory or a Hugging Face id.",
                       "model", "model (TinyLlama-1.1B-Chat, from the hub)"),
    "--served-model-name": Setting("The name clients put in `model`; short and stable, unlike "
                                   "a path.", "served_model_name",
                                   "served model name"),
    "--host": Setting("Address to bind. 127.0.0.1: only this machine can connect.", "host",
                      "host"),
    "--port": Setting("HTTP port of the OpenAI-compatible API, /health and /metrics.", "port",
                      "port 8000"),
    "--dtype": Setting("Weight and activation precision. bfloat16 on CPU; auto picks the "
                       "model's own on GPU.", "dtype", "dtype"),
    "--max-model-len": Setting("Longest prompt + answer in tokens; sizes the KV cache per "
                               "request. Read from the model's config, never guessed.",
                               "max_model_len",
                               "max model length: 8192 for every model (broke TinyLlama: 2048)"),
    "--runner": Setting("generate for chat models, pooling for embeddings.", "runner",
                        "none"),
    "--enable-auto-tool-choice": Setting("Let the model decide when to call a tool "
                                         "(tool_choice='auto').", "enable_tools",
                                         "auto tool choice"),
    "--tool-call-parser": Setting("Which parser turns the model's tool-call text into "
                                  "`tool_calls`; must match the model family (catalog).",
                                  "tool_call_parser", "tool parser"),
    "--chat-template": Setting("Jinja template that turns messages (and tools) into the prompt; "
                               "absent: the tokenizer's own.", "chat_template",
                               "chat template"),
    "--enforce-eager": Setting("Skip torch.compile and CUDA graphs: ~30 s start instead of "
                               "80-110 s on CPU; decoding within ~6% of compiled on 2 cores "
                               "(benchmarks/results/tuning*.json).", "enforce_eager",
                               "enforce eager"),
    "--gpu-memory-utilization": Setting("Fraction of GPU memory vLLM may take; what is left "
                                        "after the weights becomes KV cache.",
                                        "gpu_memory_utilization",
                                        "GPU memory utilisation"),
    "--tensor-parallel-size": Setting("Split every layer across N GPUs of one node, for models "
                                      "that do not fit on one.", "extra_args",
                                      "tensor parallel size"),
    "--enable-prefix-caching": Setting("Reuse the KV cache of a shared prompt prefix (system "
                                       "prompt, history); on by default in vLLM 0.32.",
                                       "extra_args", "prefix caching"),
    "--no-enable-prefix-caching": Setting("Turn prefix caching off (to measure what it saves).",
                                          "extra_args", "prefix caching"),
    "--reasoning-parser": Setting("Split a thinking model's reasoning from its answer "
                                  "(`reasoning_content`).", "catalog: reasoning_parser",
                                  "none"),
    "--tokenizer-mode": Setting("mistral: use mistral_common's tokenizer and template (Mistral "
                                "tool-call ids need it).", "catalog: extra_args", "none"),
    "--api-key": Setting("A key every request must send (vLLM checks it on /v1 routes only). "
                         "The lab does not use it: its launcher checks the key on every "
                         "route, read from a file (never on a command line or in an "
                         "environment).", "runtime", "API key"),
}

ENV: dict[str, Setting] = {
    "VLLM_CPU_KVCACHE_SPACE": Setting("CPU KV-cache size in GiB. Without it vLLM takes ~92% "
                                      "of RAM.", "kv_cache_gib",
                                      "KV-cache size (on GPU: GPU memory utilisation)"),
    "VLLM_CPU_NUM_OF_RESERVED_CPU": Setting("Cores kept free for vLLM's scheduler. The lab "
                                            "reserves none on <= 4 cores (faster, if quiet).",
                                            "server_env() (core count)", "none (GPU host)"),
    "TORCHDYNAMO_DISABLE": Setting("Eager servers only: run vLLM's few torch.compile'd sampler "
                                   "helpers uncompiled; compiling needs a C++ compiler the CPU "
                                   "image lacks (logprobs requests killed the engine).",
                                   "server_env() (enforce_eager)", "none"),
    "VLLM_USE_AOT_COMPILE": Setting("Compiled servers only: vLLM's older torch.compile cache, "
                                    "which loads at the next start (the default AOT artifact "
                                    "does not load on CPU with torch 2.13: every start "
                                    "compiled again; 131 s, then 52 s with this).",
                                    "server_env() (enforce_eager=False)", "none"),
    "HF_HUB_OFFLINE": Setting("Never contact the Hugging Face hub: local models only.",
                              "offline", "none (hub downloads, HF cache mounted)"),
    "HF_TOKEN": Setting("Hugging Face token for gated models (Llama, Mistral).", "env",
                        "HF token"),
    KEY_FILE_ENV: Setting("The file holding the server's API key (generated per start, 0600). "
                          "The lab's launcher reads it; every route but /health needs the "
                          "key. The key itself is in no command line or environment.",
                          "runtime", "API key file"),
}


def command_flags(args: list[str]) -> list[tuple[str, str]]:
    """(flag, value) pairs of a vLLM command line; value is '' for a switch."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            flag, _, inline = token.partition("=")
            if inline:
                out.append((flag, inline))
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out.append((flag, args[i + 1]))
                i += 1
            else:
                out.append((flag, ""))
        i += 1
    return out


def settings_table(config: ServerConfig, *, strict: bool = False) -> pd.DataFrame:
    """One row per flag of `config.vllm_args()` and variable of `config.server_env()`.

    The API key row is added because every lab runtime passes one. `strict=True` raises
    UndocumentedSetting for a flag without a description instead of marking the row.
    """
    import pandas as pd

    rows = []
    items = [("flag", flag, value) for flag, value in command_flags(config.vllm_args())]
    items += [("env", name, value) for name, value in config.server_env().items()]
    items.append(("env", KEY_FILE_ENV, "(the server's key file)"))
    for kind, name, value in items:
        setting = (FLAGS if kind == "flag" else ENV).get(name)
        if setting is None:
            if strict:
                raise UndocumentedSetting(
                    f"{name} is in the server's command but the lab does not describe it.",
                    fix="add it to FLAGS or ENV in lab_helpers/server/settings_table.py",
                )
            setting = Setting("(not described by the lab: see vLLM's `vllm serve --help`)",
                              "extra_args / env", "")
        rows.append({"setting": name, "value": value, "what it does": setting.what,
                     "lab field": setting.field, "original lab": setting.original})
    return pd.DataFrame(rows)
