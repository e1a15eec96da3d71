"""What a vLLM server is: ServerConfig, the `cpu` and `gpu` profiles, and the vLLM argv.

A config is plain data. Both runtimes (Podman and a local process) turn the same config into
the same vLLM arguments; only where the model lives differs (a host path, or the path it is
mounted at inside the container). The config hash decides whether a running server can be
reused: same hash, same server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from ..models import CHAT_MODEL, EMBEDDING_MODEL, bundled_model
from ..paths import container_name, port_base
from .catalog import chat_config
from .keyguard import LAUNCHER_REVISION
from .lab_settings import lab_model

Device = Literal["cpu", "gpu"]
Runner = Literal["generate", "pooling"]

CONTAINER_PORT = 8000
CONTAINER_MODEL_ROOT = "/models"

# The upstream GPU image, pinned to the vLLM version the lab teaches.
GPU_IMAGE = "docker.io/vllm/vllm-openai:v0.32.0"
CPU_IMAGE = "localhost/vllm-lab-cpu:0.32.0"
# The same image plus g++, for servers that use torch.compile (no --enforce-eager).
COMPILE_IMAGE = f"{CPU_IMAGE}-compile"
GPU_CHAT_MODEL = "Qwen/Qwen2.5-3B-Instruct"
GPU_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# vLLM's CPU backend keeps one core free for its scheduler process (which busy-polls). On 2
# cores that halves the cores doing the maths: measured on this 2-core machine when it was
# quiet (issue 7), reserving none gave x1.65 output tokens/s at 16 concurrent requests and
# x1.32 at 1. The reserved core is 1/N of the machine: up to 4 cores that is 25% or more of the
# compute; with more cores the loss shrinks and the lab keeps vLLM's default. Only 2 cores were
# measured; 4 is a judgement. Caution: benchmarks/cpu_defaults.py run once while other servers
# loaded the same 2 cores (load average 35-60) showed the opposite (x0.09 at 1, x0.37 at 16):
# two OpenMP threads bound to both busy cores wait on each other. Set 0 here to keep vLLM's
# default everywhere.
RESERVE_NO_CORE_UP_TO = 4


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; a cgroup/taskset can narrow it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServerConfig:
    """Everything that makes one vLLM server. Immutable: derive variants with `.replace()`."""

    model: str
    """A local model directory, or a Hugging Face id (GPU profile on a host with internet)."""
    name: str = "chat"
    """The lab's name for this server; the container is `vllm-lab-<name>` (paths.container_name)."""
    served_model_name: str | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    dtype: str = "bfloat16"
    max_model_len: int | None = None
    """None lets vLLM read the model's own context length from its config."""
    runner: Runner = "generate"
    enable_tools: bool = False
    tool_call_parser: str | None = None
    chat_template: str | None = None
    """A chat template file; None uses the tokenizer's own template."""
    enforce_eager: bool = True
    """Skip torch.compile/CUDA graphs: ~20 s start instead of 90-100 s on CPU; decoding within
    ~6% of compiled on 2 cores (benchmarks/results/tuning*.json)."""
    device: Device = "cpu"
    image: str = CPU_IMAGE
    kv_cache_gib: int = 1
    """CPU only: VLLM_CPU_KVCACHE_SPACE. Without it vLLM reserves ~92% of RAM."""
    worker_process: bool = False
    """CPU only: run the model in a worker process of its own (vLLM's multiprocess executor,
    its CPU default). False runs it inside the engine core process instead
    (`--distributed-executor-backend uni`, with VLLM_ENABLE_V1_MULTIPROCESSING=0, without which
    vLLM on CPU turns `uni` back into the multiprocess executor): one process fewer to start
    and to hand every step to. Measured here on 2 cores (benchmarks/results/executor.json,
    three interleaved rounds): starts of 20-21 s instead of 28-31 s, output tokens/s at 16 users
    x0.95-x1.03 of the worker process's (the same, within noise)."""
    gpu_memory_utilization: float | None = None
    offline: bool = True
    """No hub access: the model must be a local directory."""
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    expose: bool = False
    """Allow a non-loopback `host` (e.g. 0.0.0.0): the server is then reachable from other
    machines, protected only by its API key. Never implied by `host` alone, so a typo in the
    address cannot publish a server on every interface."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"Server name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'"
            )
        if not 1 <= self.port <= 65535:
            raise ValueError(f"Port {self.port} is outside 1-65535")
        if not self.expose and not is_loopback(self.host):
            raise ConfigError(
                f"host={self.host!r} would make the server reachable from other machines.",
                cause="only loopback addresses (127.0.0.1, ::1, localhost) are allowed by default",
                fix="keep host='127.0.0.1', or say it explicitly: "
                "config.replace(host='0.0.0.0', expose=True)  (vllm-lab up --expose)",
            )
        if self.expose and not is_loopback(self.host):
            warnings.warn(f"Server {self.name!r} will listen on {self.host}: reachable from other "
                          "machines, protected only by its API key.", stacklevel=3)
        if self.enable_tools and not self.tool_call_parser:
            raise ValueError("enable_tools needs a tool_call_parser (e.g. 'hermes')")
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        object.__setattr__(self, "env", dict(self.env))

    # -- derived facts -------------------------------------------------------------------

    @property
    def is_local_model(self) -> bool:
        return (self.model.startswith(("/", "./", "../", "~"))
                or Path(self.model).expanduser().is_dir())

    @property
    def model_path(self) -> Path | None:
        return Path(self.model).expanduser().resolve() if self.is_local_model else None

    @property
    def model_name(self) -> str:
        """The name clients send in requests."""
        if self.served_model_name:
            return self.served_model_name
        return Path(self.model).name if self.is_local_model else self.model

    @property
    def container_name(self) -> str:
        return container_name(self.name)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def replace(self, **changes: object) -> ServerConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def config_hash(self) -> str:
        """Stable hash of everything that shapes the server (the API key is not part of it)."""
        data = dataclasses.asdict(self)
        data["env"] = dict(sorted(self.env.items()))
        # The lab's own defaults (server_env) shape the server too: a new default restarts it.
        data["server_env"] = dict(sorted(self.server_env().items()))
        data["launcher_revision"] = LAUNCHER_REVISION  # a changed launcher restarts it too
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- vLLM arguments ------------------------------------------------------------------

    def vllm_args(self, *, model: str | None = None, chat_template: str | None = None,
                  host: str | None = None, port: int | None = None) -> list[str]:
        """Arguments after `python -m vllm.entrypoints.openai.api_server`.

        The runtime passes where the model and template are *as the server sees them*
        (a container mount or a host path) and the address to bind.
        """
        args = [
            "--model", model or self.model,
            "--served-model-name", self.model_name,
            "--host", host or self.host,
            "--port", str(port or self.port),
            "--dtype", self.dtype,
        ]
        if self.max_model_len:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.runner != "generate":
            args += ["--runner", self.runner]
        if self.enable_tools:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", str(self.tool_call_parser)]
        template = chat_template or self.chat_template
        if template:
            args += ["--chat-template", template]
        if self.enforce_eager:
            args.append("--enforce-eager")
        if self.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.device == "cpu" and not self.worker_process:
            args += ["--distributed-executor-backend", "uni"]
        args += list(self.extra_args)
        return args

    def vllm_serve_command(self, key_file: str | Path = "KEY_FILE") -> str:
        """The same server with vLLM alone, as one shell command: `vllm serve MODEL ...`.

        The lab runs vLLM's API server behind its launcher (`keyguard.py`), which requires
        the key on every route; vLLM's own `--api-key` guards its API routes only (not
        /metrics or /health). The key is read from `key_file` when the command runs and then
        stays in the server's command line (visible in `ps`), which the launcher avoids.
        """
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.server_env().items()))
        args = self.vllm_args()
        model = args[args.index("--model") + 1]
        rest = [a for i, a in enumerate(args) if a != "--model" and (i == 0 or args[i - 1]
                                                                     != "--model")]
        return " ".join(filter(None, [env, "vllm serve", shlex.quote(model), shlex.join(rest),
                                      f'--api-key "$(cat {shlex.quote(str(key_file))})"']))

    def server_env(self) -> dict[str, str]:
        """Environment for the server process (the API key is added by the runtime)."""
        env: dict[str, str] = {}
        if self.device == "cpu":
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.kv_cache_gib)
            if not self.worker_process:
                env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # else `uni` becomes `mp` on CPU
            if usable_cores() <= RESERVE_NO_CORE_UP_TO:
                env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
            if self.enforce_eager:
                # Eager still torch.compiles vLLM's small sampler helpers (logprob ranks) at
                # their first use; that needs a C++ compiler, which the CPU image has not:
                # the first logprobs request killed the engine. Without compilation they run
                # as plain torch ops.
                env["TORCHDYNAMO_DISABLE"] = "1"
            else:
                # vLLM 0.32 with torch 2.13 saves the compiled model as an AOT artifact by
                # default, then cannot load it on CPU ("'function' object has no attribute
                # 'finalize_loading'", with or without the "mega" artifact) and compiles again
                # at every start. Its older compile cache loads: measured here, the tuned
                # server's second start took 52 s instead of 131 s (engine init 19 s, not ~100).
                env["VLLM_USE_AOT_COMPILE"] = "0"
        if self.offline:
            env["HF_HUB_OFFLINE"] = "1"
        env.update(self.env)
        return env


def chat_server(profile: Device = "cpu", **overrides: object) -> ServerConfig:
    """The chat server of a profile, with tool calling on (modules 1-4 share it).

    cpu: the bundled SmolLM2-135M-Instruct on the lab's vllm-cpu image; its prepared chat
    template renders tools in Hermes format. gpu: a stronger instruct model on the upstream
    image, pulled from the hub (needs internet and an NVIDIA GPU with CDI).
    `model=` picks another model of `lab_helpers.catalog` with its tool parser, template and
    context length; a model outside it needs `tool_call_parser=` by hand (UnknownModel).
    Without `model=`, the model the lab's settings hold for this profile (`vllm-lab settings
    --model`; lab_settings.py), else the profile's own.
    """
    if profile == "cpu":
        model, context = bundled_model(CHAT_MODEL)
        base = ServerConfig(
            model=model,
            name="chat",
            served_model_name=CHAT_MODEL,
            port=port_base(),
            max_model_len=context,
            enable_tools=True,
            tool_call_parser="hermes",
            device="cpu",
            image=CPU_IMAGE,
        )
    elif profile == "gpu":
        base = ServerConfig(
            model=GPU_CHAT_MODEL,
            name="chat",
            served_model_name="qwen2.5-3b-instruct",
            port=port_base(),
            dtype="auto",
            enable_tools=True,
            tool_call_parser="hermes",
            enforce_eager=False,
            device="gpu",
            image=GPU_IMAGE,
            gpu_memory_utilization=0.85,
            offline=False,
        )
    else:
        raise ValueError(f"Unknown profile {profile!r}: choose 'cpu' or 'gpu'")
    model = overrides.pop("model", None)
    if model is None:
        model = lab_model(profile)  # the lab's settings (vllm-lab settings --model)
    if profile == "gpu" and model is None:
        model = GPU_CHAT_MODEL
    if model is not None and (profile == "gpu" or model != base.model):
        # Parser, template and context length for the model come from the catalog.
        return chat_config(profile, base, str(model), overrides)
    return base.replace(**overrides) if overrides else base


def embedding_server(profile: Device = "cpu", **overrides: object) -> ServerConfig:
    """A second server with the bundled embeddings model (all-MiniLM-L6-v2)."""
    if profile == "cpu":
        model, context = bundled_model(EMBEDDING_MODEL)
        base = ServerConfig(
            model=model, name="embed", served_model_name=EMBEDDING_MODEL, port=port_base() + 1,
            max_model_len=context, runner="pooling", dtype="float32", device="cpu",
            image=CPU_IMAGE,
        )
    elif profile == "gpu":
        base = ServerConfig(
            model=GPU_EMBEDDING_MODEL, name="embed", served_model_name="all-minilm-l6-v2",
            port=port_base() + 1, runner="pooling", dtype="auto", device="gpu", image=GPU_IMAGE,
            enforce_eager=False, gpu_memory_utilization=0.10, offline=False,
        )
    else:
        raise ValueError(f"Unknown profile {profile!r}: choose 'cpu' or 'gpu'")
    return base.replace(**overrides) if overrides else base
