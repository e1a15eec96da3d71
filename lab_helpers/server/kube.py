"""From one container to a cluster: Kubernetes YAML generated from a running lab container.

`podman kube generate` turns every bind mount into a hostPath volume. Three of them must not go
to a cluster as host paths: the API key file and the room's attendee keys (a cluster keeps keys
in Secrets; the room's is optional: without it there are no attendees) and the lab's launcher
(shipped as a ConfigMap). `kube_yaml` rewrites those volumes; `kube_setup_commands` gives the
`kubectl` commands that create the Secrets and the ConfigMap from the files, so no key's value
is in the YAML or the commands. Room mode's manifests for a cluster (a Deployment with probes,
the Secrets with the keys, the same Secret names) are `room_kube.py`.
"""

from __future__ import annotations

import shlex

import yaml

from ..errors import ServerNotFound
from ..paths import container_name
from .keyguard import LAUNCHER_FILES
from .keys import key_file
from .podman import KEY_MOUNT, LAUNCHER, LAUNCHER_DIR
from .podman_cli import run_podman
from .room import KEYS_NAME, ROOM_MOUNT, keys_path

KEY_ITEM = "api-key"
LAUNCHER_CONFIGMAP = "vllm-lab-keyguard"


def secret_name(name: str) -> str:
    return f"{container_name(name)}-api-key"


def room_secret_name(name: str) -> str:
    return f"{container_name(name)}-room-keys"


def kube_yaml(name: str = "chat", service: bool = True) -> str:
    """`podman kube generate` for the lab server `name`, its key volume made a Secret."""
    args = ["kube", "generate", container_name(name)]
    if service:
        args.append("--service")
    proc = run_podman(*args, check=False, timeout=60)
    if proc.returncode != 0:
        raise ServerNotFound(
            f"No Podman container for lab server {name!r} to export.",
            cause=proc.stderr.strip()[-300:],
            fix="start it in Podman first: server.start(chat_server(), runtime='podman')",
        )
    docs = [_rewrite(doc, name) for doc in kube_documents(proc.stdout)]
    return yaml.safe_dump_all(docs, sort_keys=False)


def kube_setup_commands(name: str = "chat") -> str:
    """The kubectl commands that create what the YAML refers to by name (from files)."""
    commands = [
        f"kubectl create secret generic {secret_name(name)} "
        f"--from-file={KEY_ITEM}={shlex.quote(str(key_file(name)))}",
        f"kubectl create configmap {LAUNCHER_CONFIGMAP} " + " ".join(
            f"--from-file={file}={shlex.quote(str(LAUNCHER.with_name(file)))}"
            for file in LAUNCHER_FILES),
    ]
    if keys_path(name).exists():
        commands.append(f"kubectl create secret generic {room_secret_name(name)} "
                        f"--from-file={KEYS_NAME}={shlex.quote(str(keys_path(name)))}")
    return "\n".join(commands)


def _rewrite(doc: dict, name: str) -> dict:
    if doc.get("kind") != "Pod":
        return doc
    spec = doc["spec"]
    launcher_mounts = {f"{LAUNCHER_DIR}/{file}": file for file in LAUNCHER_FILES}
    replaced: dict[str, dict] = {}
    for container in spec.get("containers", []):
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"] == KEY_MOUNT:
                replaced[mount["name"]] = {"secret": {"secretName": secret_name(name)}}
                mount["subPath"] = KEY_ITEM
            elif mount["mountPath"] in launcher_mounts:  # each file from the one ConfigMap
                replaced[mount["name"]] = {"configMap": {"name": LAUNCHER_CONFIGMAP}}
                mount["subPath"] = launcher_mounts[mount["mountPath"]]
            elif mount["mountPath"] == ROOM_MOUNT:
                replaced[mount["name"]] = {"secret": {"secretName": room_secret_name(name),
                                                      "optional": True}}
    for volume in spec.get("volumes", []):
        if volume["name"] in replaced:
            volume.pop("hostPath", None)
            volume.update(replaced[volume["name"]])
    return doc


def kube_documents(text: str) -> list[dict]:
    """The YAML as objects (Pod, Service), for checks and edits."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_containers(text: str) -> list[dict]:
    return [c for doc in kube_documents(text) if doc.get("kind") == "Pod"
            for c in doc["spec"]["containers"]]


def pod_volumes(text: str) -> list[dict]:
    return [v for doc in kube_documents(text) if doc.get("kind") == "Pod"
            for v in doc["spec"].get("volumes", [])]
