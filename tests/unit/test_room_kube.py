"""The structure of `vllm-lab room export --k8s`'s manifests, both profiles, without a cluster.

Every object is validated against Kubernetes' own schemas (`kubernetes-validate`, strict: an
unknown or misspelt field fails). What a cluster would accept but get wrong is checked too:
every mount names a volume, the Service and the Deployment select the pod's labels, the probes
ask /health on the container's port, no Secret is mounted with `subPath` (it would never see a
revocation), no key is in the manifests, and the Secrets' files are what the real launcher
reads. Running the CPU manifests is tests/integration/test_room_kube.py.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import PurePosixPath

import kubernetes_validate
import pytest
import yaml

from lab_helpers.cli.main import build_parser, main
from lab_helpers.errors import LabError
from lab_helpers.server import room
from lab_helpers.server.config import CPU_IMAGE, GPU_IMAGE, chat_server
from lab_helpers.server.keyguard import KEY_FILE_ENV, ROOM_KEYS_ENV
from lab_helpers.server.kube import KEY_ITEM, room_secret_name, secret_name
from lab_helpers.server.podman import LAUNCHER, LAUNCHER_MOUNT
from lab_helpers.server.room_guard import ATTENDEE_IN_FLIGHT, RoomKeys
from lab_helpers.server.room_kube import (
    MANIFESTS,
    SECRETS,
    dump,
    export_room,
    room_manifests,
    room_secrets,
    secret_files,
)

NAME = "unit-k8s"


@pytest.fixture
def clean_room():
    yield
    room.clear_room(NAME)
    shutil.rmtree(room.room_dir(NAME), ignore_errors=True)


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


def pod_parts(profile: str, replicas: int = 1) -> tuple[dict, dict, dict]:
    docs = by_kind(room_manifests(chat_server(profile, name=NAME), replicas))
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    return docs, spec, spec["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def mounted_at(container: dict, spec: dict, file_path: str) -> dict:
    """The volume whose mount folder holds `file_path` (no subPath anywhere)."""
    folder = str(PurePosixPath(file_path).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == folder)
    return next(v for v in spec["volumes"] if v["name"] == mount["name"])


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_deployment_service_and_configmap_fit_together(profile):
    docs, spec, container = pod_parts(profile, replicas=3)
    assert list(docs) == ["ConfigMap", "Deployment", "Service"]
    deployment, service = docs["Deployment"], docs["Service"]
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": ports["http"]}
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    volumes = {v["name"] for v in spec["volumes"]}
    assert all(m["name"] in volumes for m in container["volumeMounts"])
    assert not any("subPath" in m for m in container["volumeMounts"])
    assert spec["automountServiceAccountToken"] is False
    # the launcher comes from the ConfigMap, as the file keyguard.py next to vLLM
    launcher = mounted_at(container, spec, LAUNCHER_MOUNT)
    assert launcher["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert docs["ConfigMap"]["data"]["keyguard.py"] == LAUNCHER.read_text()
    room_guard = LAUNCHER.with_name("room_guard.py")  # the room's policy, which keyguard imports
    assert docs["ConfigMap"]["data"]["room_guard.py"] == room_guard.read_text()
    assert mounted_at(container, spec, f"{LAUNCHER_MOUNT.rsplit('/', 1)[0]}/room_guard.py") \
        == launcher
    assert container["args"][0] == LAUNCHER_MOUNT
    args = container["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == str(ports["http"])
    # the keys come from the Secrets module 1's export names, as folders
    env = env_of(container)
    key_volume = mounted_at(container, spec, env[KEY_FILE_ENV]["value"])
    assert key_volume["secret"]["secretName"] == secret_name(NAME)
    assert env[KEY_FILE_ENV]["value"].endswith("/" + KEY_ITEM)
    room_volume = mounted_at(container, spec, env[ROOM_KEYS_ENV]["value"])
    assert room_volume["secret"] == {"secretName": room_secret_name(NAME), "defaultMode": 0o400,
                                     "optional": True}
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert next(v for v in spec["volumes"] if v["name"] == shm["name"])["emptyDir"][
        "medium"] == "Memory"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_object_fits_kubernetes_schema(profile):
    docs = room_manifests(chat_server(profile, name=NAME), replicas=2)
    docs += room_secrets(NAME, "lab-instructor", {"alice": "room-a"})
    version = kubernetes_validate.latest_version()
    for doc in yaml.safe_load_all(dump(docs)):  # the YAML as written, not the dicts
        kubernetes_validate.validate(doc, version, strict=True)
    broken = docs[1]
    broken["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"] = "0400"
    with pytest.raises(kubernetes_validate.ValidationError):  # the check can fail
        kubernetes_validate.validate(broken, version, strict=True)


def test_cpu_profile_runs_the_lab_image_on_the_prepared_model():
    _, spec, container = pod_parts("cpu")
    assert container["image"] == CPU_IMAGE
    assert container["command"] == ["/opt/venv/bin/python"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    model = container["args"][container["args"].index("--model") + 1]
    volume = mounted_at(container, spec, model + "/config.json")
    assert volume["hostPath"]["path"] == str(chat_server("cpu").model_path)
    assert env_of(container)["HF_HUB_OFFLINE"]["value"] == "1"


def test_gpu_profile_adds_the_gpu_limit_and_the_upstream_image():
    _, spec, container = pod_parts("gpu")
    assert container["image"] == GPU_IMAGE
    assert container["command"] == ["python3"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert not any("hostPath" in v for v in spec["volumes"])  # the model comes from the hub
    token = env_of(container)["HF_TOKEN"]
    assert "value" not in token and token["valueFrom"]["secretKeyRef"]["optional"] is True
    assert container["startupProbe"]["failureThreshold"] * \
        container["startupProbe"]["periodSeconds"] >= 600  # time to download the model


def test_replicas_below_one_are_refused():
    with pytest.raises(LabError, match="--replicas 1"):
        room_manifests(chat_server("cpu", name=NAME), replicas=0)


def test_secrets_hold_what_the_launcher_reads(tmp_path):
    docs = room_secrets(NAME, "lab-instructor", {"bob": "room-b", "alice": "room-a"})
    assert [d["metadata"]["name"] for d in docs] == [secret_name(NAME), room_secret_name(NAME)]
    assert all(d["kind"] == "Secret" and d["type"] == "Opaque" for d in docs)
    assert base64.b64decode(docs[0]["data"][KEY_ITEM]).decode() == "lab-instructor"
    files = secret_files(dump(docs))
    path = tmp_path / "keys.json"
    path.write_text(files[room_secret_name(NAME)]["keys.json"])
    keys = RoomKeys(str(path))  # the launcher's own reader
    assert (keys.attendee("room-a"), keys.attendee("room-b"), keys.attendee("x")) == \
        ("alice", "bob", None)
    assert json.loads(path.read_text()) == {"attendees": {"alice": "room-a", "bob": "room-b"}}
    # the room's options sit beside the keys, where the launcher looks for them
    assert keys.in_flight_limit() == ATTENDEE_IN_FLIGHT  # benchmarks not allowed by default
    allowed = secret_files(dump(room_secrets(NAME, "k", {}, allow_benchmarks=True)))
    (tmp_path / "options.json").write_text(allowed[room_secret_name(NAME)]["options.json"])
    assert keys.in_flight_limit() is None


def test_export_writes_keys_only_in_the_secrets_file(tmp_path, clean_room, capsys):
    alice = room.add_attendee(NAME, "alice")
    out = tmp_path / "k8s"
    assert main(["room", "export", "--k8s", "--server", NAME, "--profile", "cpu",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    manifests, secrets_text = (out / MANIFESTS).read_text(), (out / SECRETS).read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    assert oct((out / SECRETS).stat().st_mode & 0o777) == "0o600"
    assert "&id" not in manifests  # plain YAML, no anchors
    assert [d["kind"] for d in yaml.safe_load_all(manifests)] == \
        ["ConfigMap", "Deployment", "Service"]
    api_key = secret_files(secrets_text)[secret_name(NAME)][KEY_ITEM]
    for text in (manifests, printed):
        assert alice not in text and api_key not in text
    assert "kubectl apply" in printed

    room.revoke_attendee(NAME, "alice")
    again = export_room(chat_server("cpu", name=NAME), out=out)
    assert again.key_source == "kept from the earlier export"
    files = secret_files((out / SECRETS).read_text())
    assert files[secret_name(NAME)][KEY_ITEM] == api_key
    assert json.loads(files[room_secret_name(NAME)]["keys.json"]) == {"attendees": {}}


def test_bad_input_is_refused_before_anything_is_written(tmp_path, clean_room):
    out = tmp_path / "never"
    with pytest.raises(LabError):
        export_room(chat_server("cpu", name=NAME), replicas=0, out=out)
    assert not out.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(LabError, match="--out room-k8s"):
        export_room(chat_server("cpu", name=NAME), out=a_file)
    with pytest.raises(SystemExit):  # the format is said, not guessed
        build_parser().parse_args(["room", "export"])
