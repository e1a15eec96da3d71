"""vLLM in a Podman container: labels carry the lab's bookkeeping, so `podman ps` is the truth.

Every lab container has the label io.vllm-lab.managed=true plus its name, port, model and
config hash; the API key travels as an environment variable taken from podman's own
environment (`-e VLLM_API_KEY`), so it never shows in the command line or `podman inspect` args.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ..config import CONTAINER_MODEL_ROOT, CONTAINER_PORT, ServerConfig
from ..errors import ImageMissing
from ..paths import vllm_cache_dir
from ..podman_cli import (
    image_exists,
    podman_argv,
    podman_env,
    podman_json,
    require_podman,
    run_podman,
    shell_preview,
)
from .base import Runtime, ServerInfo

LABEL = "io.vllm-lab"
MANAGED = f"{LABEL}.managed=true"


class PodmanRuntime(Runtime):
    kind = "podman"

    # -- the command -----------------------------------------------------------------------

    def command(self, config: ServerConfig) -> list[str]:
        argv = podman_argv(
            "run", "--detach",
            "--name", config.container_name,
            "--label", MANAGED,
            "--label", f"{LABEL}.name={config.name}",
            "--label", f"{LABEL}.port={config.port}",
            "--label", f"{LABEL}.host={config.host}",
            "--label", f"{LABEL}.model={config.model_name}",
            "--label", f"{LABEL}.config-hash={config.config_hash()}",
            "--publish", f"{config.host}:{config.port}:{CONTAINER_PORT}",
            "--env", "VLLM_API_KEY",
        )
        for key, value in sorted(config.server_env().items()):
            argv += ["--env", f"{key}={value}"]
        model_arg = config.model
        if config.model_path is not None:
            model_arg = f"{CONTAINER_MODEL_ROOT}/{config.model_path.name}"
            argv += ["--volume", f"{config.model_path}:{model_arg}:ro"]
        template_arg = None
        if config.chat_template:
            template = Path(config.chat_template).expanduser().resolve()
            template_arg = f"/templates/{template.name}"
            argv += ["--volume", f"{template}:{template_arg}:ro"]
        argv += ["--volume", f"{vllm_cache_dir()}:/root/.cache/vllm"]
        if config.device == "gpu":
            hf_cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
            argv += [
                "--device", "nvidia.com/gpu=all",
                "--ipc=host",
                "--volume", f"{hf_cache}:/root/.cache/huggingface",
                "--env", "HF_TOKEN",
            ]
        else:
            argv += ["--shm-size", "2g"]
        argv.append(config.image)
        argv += config.vllm_args(model=model_arg, chat_template=template_arg,
                                 host="0.0.0.0", port=CONTAINER_PORT)
        return argv

    def preview(self, config: ServerConfig) -> str:
        return shell_preview(self.command(config))

    def check(self, config: ServerConfig) -> None:
        require_podman()
        if config.device == "cpu" and not image_exists(config.image):
            raise ImageMissing(
                f"The container image {config.image} is not built.",
                cause="the lab's CPU image is built locally (no registry is reachable)",
                fix="vllm-lab build-image   (about 3 minutes; or use runtime='local')",
            )

    def _launch(self, config: ServerConfig, api_key: str) -> str:
        argv = self.command(config)
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False,
            env=podman_env({"VLLM_API_KEY": api_key}),
        )
        if proc.returncode != 0:
            from ..errors import ServerStartError

            raise ServerStartError(
                f"podman run failed for {config.container_name}.",
                cause=proc.stderr.strip()[-500:],
                fix="vllm-lab doctor   (checks Podman, the image and ports)",
            )
        return proc.stdout.strip()

    # -- inspection ------------------------------------------------------------------------

    def _ps(self, name: str | None = None) -> list[dict]:
        args = ["ps", "--all", "--format", "json", "--filter", f"label={MANAGED}"]
        if name:
            args += ["--filter", f"name=^vllm-lab-{name}$"]
        return podman_json(*args) or []

    @staticmethod
    def _info(entry: dict) -> ServerInfo:
        labels = entry.get("Labels") or {}
        return ServerInfo(
            name=labels.get(f"{LABEL}.name", ""),
            runtime="podman",
            state=str(entry.get("State", "unknown")),
            host=labels.get(f"{LABEL}.host", "127.0.0.1"),
            port=int(labels.get(f"{LABEL}.port", 0)),
            model_name=labels.get(f"{LABEL}.model", ""),
            config_hash=labels.get(f"{LABEL}.config-hash", ""),
            ident=str(entry.get("Id", ""))[:12],
            started=entry.get("StartedAt"),
        )

    def find(self, name: str) -> ServerInfo | None:
        entries = self._ps(name)
        return self._info(entries[0]) if entries else None

    def list(self) -> list[ServerInfo]:
        try:
            require_podman()
        except Exception:
            return []
        return [self._info(e) for e in self._ps()]

    def remove(self, name: str) -> bool:
        # -t 10: vLLM shuts down cleanly on SIGTERM in a few seconds; then SIGKILL.
        proc = run_podman("rm", "--force", "--time", "10", f"vllm-lab-{name}", check=False,
                          timeout=60)
        return proc.returncode == 0

    def logs(self, name: str, tail: int = 100) -> str:
        # One pipe for both streams keeps the container's lines in order.
        proc = subprocess.run(
            podman_argv("logs", "--tail", str(tail), f"vllm-lab-{name}"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman_env(),
            timeout=60, check=False,
        )
        return proc.stdout.rstrip("\n")

    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        proc = subprocess.Popen(
            podman_argv("logs", "--follow", "--tail", str(tail), f"vllm-lab-{name}"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman_env(),
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
