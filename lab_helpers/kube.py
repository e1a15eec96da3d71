"""From one container to a cluster: Kubernetes YAML generated from a running lab container."""

from __future__ import annotations

import yaml

from .errors import ServerNotFound
from .podman_cli import run_podman


def kube_yaml(name: str = "chat", service: bool = True) -> str:
    """`podman kube generate` for the lab server `name` (a Pod, plus a Service if asked)."""
    args = ["kube", "generate", f"vllm-lab-{name}"]
    if service:
        args.append("--service")
    proc = run_podman(*args, check=False, timeout=60)
    if proc.returncode != 0:
        raise ServerNotFound(
            f"No Podman container for lab server {name!r} to export.",
            cause=proc.stderr.strip()[-300:],
            fix="start it in Podman first: server.start(chat_server(), runtime='podman')",
        )
    return proc.stdout


def kube_documents(text: str) -> list[dict]:
    """The YAML as objects (Pod, Service), for checks and edits."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_containers(text: str) -> list[dict]:
    return [c for doc in kube_documents(text) if doc.get("kind") == "Pod"
            for c in doc["spec"]["containers"]]
