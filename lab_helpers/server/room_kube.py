"""Room mode on Kubernetes: `vllm-lab room export --k8s` writes the room's server as manifests.

Two files in `<lab home>/servers/<name>.k8s/` (0700):

- `room.yaml`, no key in it: a ConfigMap with the lab's launcher (keyguard.py and
  room_guard.py), a Deployment (the same launcher, vLLM arguments and environment as the
  Podman container, a readiness probe on /health, resource requests; the GPU profile adds an
  `nvidia.com/gpu` limit and runs the upstream image) and a Service;
- `room-secrets.yaml` (0600, like the room file): the Secrets the Deployment names, the
  instructor's key and the attendees' keys file, exactly as `kube.py` (module 1's export)
  names them.

Both Secrets are mounted as folders, never with `subPath`, because a `subPath` mount is not
updated when its Secret changes: revoking an attendee is `vllm-lab room revoke NAME`, this
export again and `kubectl apply -f room-secrets.yaml`; the kubelet swaps the file in the
pod (within its sync period, about a minute) and the launcher reads it at the next request.
What `podman kube play` on one machine can and cannot show is in docs/ROOM-KUBERNETES.md.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import LabError
from ..paths import container_name, replace_file, servers_dir
from .config import CONTAINER_MODEL_ROOT, CONTAINER_PORT, ServerConfig
from .keyguard import KEY_FILE_ENV, LAUNCHER_FILES, ROOM_KEYS_ENV
from .keys import key_file
from .kube import KEY_ITEM, kube_documents, room_secret_name, secret_name
from .podman import LAUNCHER, LAUNCHER_DIR, LAUNCHER_MOUNT, image_python
from .room import KEYS_NAME, OPTIONS_NAME, ROOM_MOUNT, allow_benchmarks, attendees

MANIFESTS = "room.yaml"
SECRETS = "room-secrets.yaml"
HEALTH_PATH = "/health"
KEY_DIR = "/run/secrets/vllm-lab"
HF_TOKEN_ITEM = "token"
# Starting points, not measurements of a cluster: the CPU server used 3.3 GB here
# (`podman stats`, SmolLM2-135M, 1 GiB KV cache); the GPU profile's 3B model wants one GPU.
RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "cpu": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "6Gi"}},
    "gpu": {"requests": {"cpu": "4", "memory": "16Gi"},
            "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"}},
}
SHM_SIZE = "2Gi"  # what `podman run --shm-size 2g` gives the CPU container


def launcher_configmap_name(name: str) -> str:
    return f"{container_name(name)}-launcher"


def hf_token_secret_name(name: str) -> str:
    return f"{container_name(name)}-hf-token"


def export_dir(name: str) -> Path:
    return servers_dir() / f"{name}.k8s"


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vllm-lab",
            "app.kubernetes.io/instance": container_name(name),
            "app.kubernetes.io/component": "room-server"}


def _http_probe(period: int, failures: int, timeout: int = 3) -> dict:
    return {"httpGet": {"path": HEALTH_PATH, "port": CONTAINER_PORT}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def _volumes(config: ServerConfig) -> tuple[list[dict], list[dict], dict[str, str]]:
    """(volumes, mounts, ConfigMap files): keys from Secrets, the launcher from a ConfigMap."""
    name = config.name
    files = {file: LAUNCHER.with_name(file).read_text() for file in LAUNCHER_FILES}
    volumes = [
        {"name": "api-key", "secret": {"secretName": secret_name(name), "defaultMode": 0o400}},
        {"name": "room-keys", "secret": {"secretName": room_secret_name(name),
                                         "defaultMode": 0o400, "optional": True}},
        {"name": "launcher", "configMap": {"name": launcher_configmap_name(name)}},
        {"name": "vllm-cache", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]
    mounts = [
        {"name": "api-key", "mountPath": KEY_DIR, "readOnly": True},
        {"name": "room-keys", "mountPath": ROOM_MOUNT, "readOnly": True},
        {"name": "launcher", "mountPath": LAUNCHER_DIR, "readOnly": True},
        {"name": "vllm-cache", "mountPath": "/root/.cache/vllm"},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    if config.model_path is not None:
        # A lab-prepared model directory: every node needs it at this path (docs say how).
        volumes.append({"name": "model", "hostPath": {"path": str(config.model_path),
                                                      "type": "Directory"}})
        mounts.append({"name": "model", "readOnly": True,
                       "mountPath": f"{CONTAINER_MODEL_ROOT}/{config.model_path.name}"})
    else:
        volumes.append({"name": "hf-cache", "emptyDir": {}})
        mounts.append({"name": "hf-cache", "mountPath": "/root/.cache/huggingface"})
    if config.chat_template:
        template = Path(config.chat_template).expanduser().resolve()
        files[template.name] = template.read_text()
    return volumes, mounts, files


def _container(config: ServerConfig, mounts: list[dict]) -> dict:
    model_arg = (f"{CONTAINER_MODEL_ROOT}/{config.model_path.name}" if config.model_path
                 else config.model)
    template_arg = (f"{LAUNCHER_DIR}/{Path(config.chat_template).name}"
                    if config.chat_template else None)
    env = [{"name": k, "value": v} for k, v in sorted(config.server_env().items())]
    env += [{"name": KEY_FILE_ENV, "value": f"{KEY_DIR}/{KEY_ITEM}"},
            {"name": ROOM_KEYS_ENV, "value": f"{ROOM_MOUNT}/{KEYS_NAME}"}]
    if config.device == "gpu":  # for gated models; the Secret is optional (docs: how to make it)
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": hf_token_secret_name(config.name), "key": HF_TOKEN_ITEM, "optional": True}}})
    startup_failures = 60 if config.device == "cpu" else 90  # the GPU model is downloaded first
    return {
        "name": "vllm",
        "image": config.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [image_python(config.image)],
        "args": [LAUNCHER_MOUNT, *config.vllm_args(model=model_arg, chat_template=template_arg,
                                                  host="0.0.0.0", port=CONTAINER_PORT)],
        "env": env,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "startupProbe": _http_probe(10, startup_failures),
        "readinessProbe": _http_probe(5, 3),
        "livenessProbe": _http_probe(30, 3, timeout=5),
        "resources": RESOURCES[config.device],
        "volumeMounts": mounts,
    }


def room_manifests(config: ServerConfig, replicas: int = 1) -> list[dict]:
    """ConfigMap, Deployment and Service for the room's server `config` (no key in them)."""
    if replicas < 1:
        raise LabError(f"replicas={replicas} would run no server.",
                       fix="vllm-lab room export --k8s --replicas 1   (or more)")
    name = config.name
    labels = _labels(name)
    volumes, mounts, files = _volumes(config)
    pod_spec = {"automountServiceAccountToken": False, "enableServiceLinks": False,
                "containers": [_container(config, mounts)], "volumes": volumes}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": launcher_configmap_name(name), "labels": labels}, "data": files},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": container_name(name), "labels": labels},
         "spec": {"replicas": replicas,
                  # one GPU per pod: a rolling update would need a second one meanwhile
                  "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels,
                                            "annotations": {"io.vllm-lab/config-hash":
                                                            config.config_hash()}},
                               "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": container_name(name), "labels": labels},
         "spec": {"type": "NodePort", "selector": labels,
                  "ports": [{"name": "http", "port": CONTAINER_PORT, "targetPort": "http",
                             "protocol": "TCP"}]}},
    ]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def room_secrets(name: str, api_key: str, keys: dict[str, str],
                 allow_benchmarks: bool = False) -> list[dict]:
    """The two Secrets the Deployment mounts: the instructor's key, and the room's folder (the
    attendees' keys file and the room's options, both read by the launcher)."""
    labels = _labels(name)
    keys_file = json.dumps({"attendees": dict(sorted(keys.items()))}, indent=1)
    options_file = json.dumps({"allow_benchmarks": allow_benchmarks})
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": secret_name(name), "labels": labels},
         "data": {KEY_ITEM: _b64(api_key)}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": room_secret_name(name), "labels": labels},
         "data": {KEYS_NAME: _b64(keys_file), OPTIONS_NAME: _b64(options_file)}},
    ]


def secret_files(text: str) -> dict[str, dict[str, str]]:
    """Secret name -> {item: decoded value}, from a secrets YAML (what a kubelet mounts)."""
    return {doc["metadata"]["name"]: {k: base64.b64decode(v).decode()
                                      for k, v in (doc.get("data") or {}).items()}
            for doc in kube_documents(text) if doc.get("kind") == "Secret"}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # the labels appear three times: plain copies, not YAML anchors


def dump(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)


@dataclass(frozen=True)
class RoomExport:
    folder: Path
    manifests: Path
    secrets: Path
    attendees: int
    key_source: str
    config: ServerConfig

    def describe(self) -> str:
        model = self.config.model_path
        lines = [
            f"wrote {self.manifests} (ConfigMap, Deployment, Service: no key in it)",
            f"wrote {self.secrets} (0600: the instructor key, {self.key_source}, and "
            f"{self.attendees} attendee keys)",
            f"apply: kubectl apply -f {self.secrets} -f {self.manifests}",
            "revoke later: vllm-lab room revoke NAME, then this export again and "
            f"kubectl apply -f {self.secrets} (the pods read the new keys within about a "
            "minute, no restart)",
        ]
        if model is not None:
            lines.append(f"cpu profile: every node needs the model at {model} (a hostPath) "
                         f"and the image {self.config.image} in a registry it pulls from")
        return "\n".join(lines)


def _api_key(name: str, previous: Path) -> tuple[str, str]:
    """The cluster's instructor key: an earlier export's (re-exporting keeps it), else the
    running lab server's, else a new one."""
    if previous.exists():
        found = secret_files(previous.read_text()).get(secret_name(name), {}).get(KEY_ITEM)
        if found:
            return found, "kept from the earlier export"
    # The server's own key file (not read_api_key: on a machine that joined a room, that
    # gives an attendee's key).
    local = key_file(name).read_text().strip() if key_file(name).exists() else ""
    if local:
        return local, f"the lab server {name!r}'s current key"
    return "lab-" + secrets.token_urlsafe(24), "a new one"


def export_room(config: ServerConfig, replicas: int = 1, out: Path | None = None) -> RoomExport:
    """Write the room's manifests and Secrets for `config` (its name is the room's server)."""
    folder = Path(out).expanduser() if out else export_dir(config.name)
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{folder} is a file, not a folder for the manifests.",
                       fix="vllm-lab room export --k8s --out room-k8s   (a folder, not a file)")
    manifests = dump(room_manifests(config, replicas))  # checks replicas first
    keys = attendees(config.name)  # a damaged room file stops here, with its fix
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    secrets_path, manifests_path = folder / SECRETS, folder / MANIFESTS
    api_key, source = _api_key(config.name, secrets_path)
    replace_file(secrets_path, dump(room_secrets(config.name, api_key, keys,
                                                 allow_benchmarks(config.name))), 0o600)
    replace_file(manifests_path, manifests, 0o644)
    return RoomExport(folder, manifests_path, secrets_path, len(keys), source, config)
