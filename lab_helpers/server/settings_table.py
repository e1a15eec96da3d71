"""What every setting of a server does: one row per flag and environment variable it runs with.

    from lab_helpers.server.settings_table import settings_table
    settings_table(chat_server("cpu"))  # setting, value, vLLM default, what it does, lab field,
                                        # original lab

The rows come from the config's own command line (`ServerConfig.vllm_args()`), read by vLLM's
own `vllm serve` parser, and its environment (`ServerConfig.server_env()`), so the table cannot
drift from what runs. Values are what vLLM parsed, beside vLLM's default; the lab's descriptions
are written here, vLLM's help fills in for a flag the lab does not describe, and a unit test
fails when a lab command holds a flag without a lab description.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, LabError
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
    "--enforce-eager": Setting("Skip torch.compile and CUDA graphs: ~20 s start instead of "
                               "90-100 s on CPU; decoding within ~6% of compiled on 2 cores "
                               "(benchmarks/results/tuning*.json).", "enforce_eager",
                               "enforce eager"),
    "--distributed-executor-backend": Setting(
        "uni: the model runs inside vLLM's engine core process instead of a worker process "
        "of its own (mp, vLLM's CPU default): one process fewer to start; on 2 cores starts "
        "of 20-21 s instead of 28-31 s, the same throughput (benchmarks/results/executor.json).",
        "worker_process", "none (one GPU: vLLM's own default is uni)"),
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
    "VLLM_ENABLE_V1_MULTIPROCESSING": Setting(
        "0 with --distributed-executor-backend uni: without it vLLM on CPU turns uni back "
        "into mp.", "server_env() (worker_process)", "none"),
    "HF_HUB_OFFLINE": Setting("Never contact the Hugging Face hub: local models only.",
                              "offline", "none (hub downloads, HF cache mounted)"),
    "HF_TOKEN": Setting("Hugging Face token for gated models (Llama, Mistral).", "env",
                        "HF token"),
    KEY_FILE_ENV: Setting("The file holding the server's API key (generated per start, 0600). "
                          "The lab's launcher reads it; every route but /health needs the "
                          "key. The key itself is in no command line or environment.",
                          "runtime", "API key file"),
}


@functools.cache
def vllm_serve_parser() -> argparse.ArgumentParser:
    """vLLM's own parser of `vllm serve` / the OpenAI API server, with its help texts."""
    # Lazy: importing vLLM's CLI takes ~12 s on the lab's 2 cores (torch, vllm.config).
    from vllm.engine import arg_utils
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    # vLLM reads its help texts from the config docstrings only when `--help` is on sys.argv
    # (arg_utils.NEEDS_HELP, ~1.5 s); ask for them while building, then put the flag back.
    needs_help = getattr(arg_utils, "NEEDS_HELP", None)
    compute_kwargs = getattr(arg_utils, "_compute_kwargs", None)
    try:
        arg_utils.NEEDS_HELP = True
        if hasattr(compute_kwargs, "cache_clear"):
            compute_kwargs.cache_clear()
        return make_arg_parser(FlexibleArgumentParser())
    finally:
        arg_utils.NEEDS_HELP = needs_help
        if hasattr(compute_kwargs, "cache_clear"):
            compute_kwargs.cache_clear()


@functools.cache
def _vllm_defaults() -> dict[str, Any]:
    return vars(vllm_serve_parser().parse_args([]))


@dataclass(frozen=True)
class ParsedFlag:
    """One option of a command line as vLLM's parser reads it."""

    flag: str
    """The option as written (`--no-enable-prefix-caching`), else vLLM's long name for it."""
    value: str
    """What vLLM parsed, as text ('' for a switch); parsed alone, it gives the same value."""
    default: str
    """vLLM's default for it ('' for none)."""
    help: str
    """The first paragraph of vLLM's help text for it ('' if vLLM has none)."""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def parse_command(args: Sequence[str]) -> list[ParsedFlag]:
    """The options of a vLLM server command line, read by vLLM's own parser.

    One entry per option the command names (in its order, even when the value equals vLLM's
    default), then any other setting the parse took away from vLLM's default. A command vLLM
    rejects (where `vllm serve` would exit) raises ConfigError with vLLM's message.
    """
    from vllm.utils.argparse_utils import summary_line

    parser = vllm_serve_parser()
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # not vLLM's 300-option usage text
            parsed = vars(parser.parse_args(list(args)))
    except SystemExit:
        error = (said.getvalue().strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"vLLM's `vllm serve` does not accept this command: {error}",
                          fix="check the flag with `vllm serve --help` (ServerConfig.extra_args)",
                          details=" ".join(args)) from None
    defaults = _vllm_defaults()
    options = parser._option_string_actions  # noqa: SLF001 - argparse keeps them only here
    named: dict[str, tuple[argparse.Action, str]] = {}  # dest -> (action, option as written)
    for arg in args:  # which options the command names; their values come from `parsed`
        option = arg.split("=", 1)[0]
        action = options.get(option.replace("_", "-") if option.startswith("--") else option)
        if action is not None and action.dest != argparse.SUPPRESS:
            longs = [o for o in action.option_strings if o.startswith("--")]
            written = option.replace("_", "-") if option.startswith("--") else None
            named[action.dest] = (action, written or (longs or [option])[0])  # -tp: long name
    for action in parser._actions:  # noqa: SLF001 - set by a prefix, a dotted key, ...
        dest = action.dest
        if dest not in named and dest in parsed and parsed[dest] != defaults.get(dest):
            longs = [o for o in action.option_strings if o.startswith("--")] or [dest]
            negative = [o for o in longs if o.startswith("--no-")]
            use = negative if parsed[dest] is False and negative else longs
            named[dest] = (action, use[0])
    out = []
    for dest, (action, flag) in named.items():
        value = "" if action.nargs == 0 else _text(parsed[dest])
        help_text = summary_line((action.help or "").replace("%%", "%"))
        out.append(ParsedFlag(flag, value, _text(defaults.get(dest)), help_text))
    return out


def command_flags(args: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) pairs of a vLLM command line as vLLM parses it; value is '' for a switch."""
    return [(p.flag, p.value) for p in parse_command(args)]


def settings_table(config: ServerConfig, *, strict: bool = False) -> pd.DataFrame:
    """One row per flag of `config.vllm_args()` and variable of `config.server_env()`.

    The first call imports vLLM's CLI (~12 s). The API key row is added because every lab
    runtime passes one. A flag the lab does not describe gets vLLM's help text; `strict=True`
    raises UndocumentedSetting for it instead.
    """
    import pandas as pd

    rows = []
    for flag in parse_command(config.vllm_args()):
        setting = FLAGS.get(flag.flag)
        if setting is None:
            if strict:
                raise UndocumentedSetting(
                    f"{flag.flag} is in the server's command but the lab does not describe it.",
                    fix="add it to FLAGS in lab_helpers/server/settings_table.py",
                )
            setting = Setting(f"vLLM: {flag.help or '(no help text; see `vllm serve --help`)'}",
                              "extra_args", "")
        rows.append(_row(flag.flag, flag.value, flag.default, setting))
    env = [*config.server_env().items(), (KEY_FILE_ENV, "(the server's key file)")]
    for name, value in env:
        setting = ENV.get(name)
        if setting is None:
            if strict:
                raise UndocumentedSetting(
                    f"{name} is in the server's environment but the lab does not describe it.",
                    fix="add it to ENV in lab_helpers/server/settings_table.py",
                )
            setting = Setting("(not described by the lab)", "env", "")
        rows.append(_row(name, value, "", setting))
    return pd.DataFrame(rows)


def _row(name: str, value: str, default: str, setting: Setting) -> dict[str, str]:
    return {"setting": name, "value": value, "vLLM default": default,
            "what it does": setting.what, "lab field": setting.field,
            "original lab": setting.original}
