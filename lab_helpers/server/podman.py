"""vLLM in a Podman container: labels carry the lab's bookkeeping, so `podman ps` is the truth.

Every lab container has the label io.vllm-lab.managed=true plus its lab instance, name, port,
model and config hash. The API key stays in its key file on the host: the file is bind-mounted
read-only at /run/secrets/vllm-lab-api-key and the lab's launcher (keyguard.py, mounted next to
it) reads it at start. So the key is in no environment variable Podman records: not in
`podman inspect`, not in `podman kube generate`, not in the command. A bind mount rather than a
Podman secret: it works the same on Podman 4.3 and later, never copies the key into Podman's
store, and a preview pasted without the key file fails at the mount instead of starting an
open server. A health check (`podman ps` shows "healthy") asks /health inside the container.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ..errors import ImageMissing, ServerStartError
from ..paths import container_name, lab_instance, vllm_cache_dir
from .base import Runtime
from .config import COMPILE_IMAGE, CONTAINER_MODEL_ROOT, CONTAINER_PORT, ServerConfig
from .handle import ServerInfo
from .keyguard import KEY_FILE_ENV, LAUNCHER_FILES, ROOM_KEYS_ENV
from .keys import key_file
from .podman_cli import (
    image_exists,
    podman_argv,
    podman_env,
    podman_json,
    podman_status,
    require_podman,
    run_podman,
    shell_preview,
)
from .room import KEYS_NAME, ROOM_MOUNT, room_dir

LAUNCHER = Path(__file__).with_name("keyguard.py")

LABEL = "io.vllm-lab"
MANAGED = f"{LABEL}.managed=true"
KEY_MOUNT = "/run/secrets/vllm-lab-api-key"
LAUNCHER_DIR = "/opt/vllm-lab"
LAUNCHER_MOUNT = f"{LAUNCHER_DIR}/{LAUNCHER.name}"
# The lab's CPU image keeps vLLM in /opt/venv; the upstream GPU image has it in its python3.
CPU_IMAGE_PYTHON = "/opt/venv/bin/python"
HEALTH_CMD = (
    "{python} -c \"import urllib.request,sys; "
    "sys.exit(urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=3).status != 200)\""
)


def launcher_volumes() -> list[str]:
    """The launcher's files, each mounted read-only into LAUNCHER_DIR (side by side)."""
    return [arg for name in LAUNCHER_FILES
            for arg in ("--volume", f"{LAUNCHER.with_name(name)}:{LAUNCHER_DIR}/{name}:ro")]


def image_python(image: str) -> str:
    return CPU_IMAGE_PYTHON if image.startswith("localhost/vllm-lab-cpu") else "python3"


class PodmanRuntime(Runtime, register=True):
    kind = "podman"
    usable_first = 0

    @classmethod
    def usable(cls) -> bool:
        return podman_status()[0]

    # -- the command -----------------------------------------------------------------------

    def command(self, config: ServerConfig) -> list[str]:
        python = image_python(config.image)
        argv = podman_argv(
            "run", "--detach",
            "--name", config.container_name,
            "--label", MANAGED,
            "--label", f"{LABEL}.instance={lab_instance()}",
            "--label", f"{LABEL}.name={config.name}",
            "--label", f"{LABEL}.port={config.port}",
            "--label", f"{LABEL}.host={config.host}",
            "--label", f"{LABEL}.model={config.model_name}",
            "--label", f"{LABEL}.config-hash={config.config_hash()}",
            "--publish", f"{config.host}:{config.port}:{CONTAINER_PORT}",
            "--volume", f"{key_file(config.name)}:{KEY_MOUNT}:ro",
            *launcher_volumes(),
            "--env", f"{KEY_FILE_ENV}={KEY_MOUNT}",
            # Room mode: the attendees' keys. The folder, not the file, so that a replaced
            # file (an attendee added or revoked) is what the launcher reads next.
            "--volume", f"{room_dir(config.name)}:{ROOM_MOUNT}:ro",
            "--env", f"{ROOM_KEYS_ENV}={ROOM_MOUNT}/{KEYS_NAME}",
            "--health-cmd", HEALTH_CMD.format(python=python, port=CONTAINER_PORT),
            "--health-interval", "10s", "--health-start-period", "120s",
            "--entrypoint", python,
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
        argv += [config.image, LAUNCHER_MOUNT]
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
                fix=("vllm-lab build-image --compiler   (the image with g++, for torch.compile; "
                     "or use runtime='local')" if config.image == COMPILE_IMAGE else
                     "vllm-lab build-image   (about 3 minutes; or use runtime='local')"),
            )

    def _launch(self, config: ServerConfig) -> str:
        argv = self.command(config)
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, env=podman_env(),
        )
        if proc.returncode != 0:
            raise ServerStartError(
                f"podman run failed for {config.container_name}.",
                cause=proc.stderr.strip()[-500:],
                fix="vllm-lab doctor   (checks Podman, the image and ports)",
            )
        return proc.stdout.strip()

    # -- inspection ------------------------------------------------------------------------

    def _ps(self, name: str | None = None) -> list[dict]:
        args = ["ps", "--all", "--format", "json", "--filter", f"label={MANAGED}",
                "--filter", f"label={LABEL}.instance={lab_instance()}"]
        if name:
            args += ["--filter", f"name=^{container_name(name)}$"]
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

    def equivalents(self, name: str) -> dict[str, str]:
        container = container_name(name)
        return {what: shell_preview(podman_argv(*args)) for what, args in {
            "list (with health)": ("ps", "--filter", f"label={LABEL}.instance={lab_instance()}"),
            "follow the log": ("logs", "--follow", "--tail", "20", container),
            "memory and CPU": ("stats", "--no-stream", container),
            "health check now": ("healthcheck", "run", container),
            "stop": ("stop", "--time", "10", container),
            "remove": ("rm", container),
        }.items()}

    def _healthy(self, config: ServerConfig) -> None:
        # Podman runs health checks from systemd timers; without systemd (containers, WSL,
        # CI) nothing runs them, so run the first one now: `podman ps` then says "healthy".
        run_podman("healthcheck", "run", config.container_name, check=False, timeout=30)

    def _remove(self, name: str, grace: float) -> bool:
        proc = run_podman("rm", "--force", "--time", str(max(1, round(grace))),
                          container_name(name), check=False, timeout=60 + grace)
        return proc.returncode == 0

    def logs(self, name: str, tail: int = 100) -> str:
        # One pipe for both streams keeps the container's lines in order.
        proc = subprocess.run(
            podman_argv("logs", "--tail", str(tail), container_name(name)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman_env(),
            timeout=60, check=False,
        )
        return proc.stdout.rstrip("\n")

    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        proc = subprocess.Popen(
            podman_argv("logs", "--follow", "--tail", str(tail), container_name(name)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=podman_env(),
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
