"""The room's Kubernetes manifests, run for real: `vllm-lab room export --k8s` (CPU profile),
then `podman kube play` (Podman's own Kubernetes runner) on the lab's CPU image. One pod start.

The pod becomes ready (its readiness probe's GET answers 200), answers an attendee's key and
the instructor's, refuses a missing, wrong or revoked key; revoking is the cluster's way: the
room command, the export again, the new Secret's files put in place as a kubelet swaps them
(the launcher reads them at the next request). `podman kube down` removes the pod.

What the test changes, for Debian's Podman 4.3 only (docs/ROOM-KUBERNETES.md says why; the
exported files are checked unchanged first and in tests/unit/test_room_kube.py):
- each Secret volume becomes a hostPath folder holding that Secret's files, decoded from the
  exported room-secrets.yaml (a Secret volume makes 4.3's `kube play` panic);
- the container port is published on 127.0.0.1 at a port of this test lab (4.3 publishes a
  port without `hostPort` on every interface at the same number, 8000);
- the probes are left out and the test does the readiness probe's GET itself (4.3 ignores
  readiness and startup probes and runs an httpGet probe as `curl` inside the container, which
  the image has not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from lab_helpers.paths import container_name, port_base
from lab_helpers.server import room
from lab_helpers.server.config import chat_server
from lab_helpers.server.kube import KEY_ITEM, kube_documents, room_secret_name, secret_name
from lab_helpers.server.podman_cli import image_exists, podman_status, run_podman
from lab_helpers.server.room_kube import (
    MANIFESTS,
    SECRETS,
    export_dir,
    launcher_configmap_name,
    secret_files,
)

pytestmark = [pytest.mark.integration, pytest.mark.podman]

SERVER = "room-k8s"  # its own room file, Secrets, pod and port: no other test's
PORT = port_base() + 40
READY_TIMEOUT_S = 720  # 432 s measured with a load average of 57 on 2 cores


def vllm_lab(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "lab_helpers.cli", *args], text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kubelet_put(secrets_text: str, folder: Path) -> dict[str, Path]:
    """Each Secret's files into folder/<secret>/ (0400 in 0700), each file replaced in one
    step, as a kubelet swaps a mounted Secret: a reader sees the old file or the new one."""
    where = {}
    for name, items in secret_files(secrets_text).items():
        path = folder / name
        path.mkdir(mode=0o700, exist_ok=True)
        for item, value in items.items():
            tmp = path / f".{item}.new"
            tmp.write_text(value)
            tmp.chmod(0o400)
            os.replace(tmp, path / item)
        where[name] = path
    return where


def podman_43_variant(manifests_text: str, secret_dirs: dict[str, Path]) -> str:
    docs = kube_documents(manifests_text)
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        for volume in spec["volumes"]:
            if "secret" in volume:
                source = secret_dirs[volume.pop("secret")["secretName"]]
                volume["hostPath"] = {"path": str(source), "type": "Directory"}
        container = spec["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            container.pop(probe)
        container["ports"][0].update(hostPort=PORT, hostIP="127.0.0.1")
    return yaml.safe_dump_all(docs, sort_keys=False)


def pod_names() -> list[str]:
    pods = run_podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    return [p for p in pods if p.startswith(f"{container_name(SERVER)}-pod")]


def _clean(played: Path) -> None:
    if played.exists():
        run_podman("kube", "down", str(played), check=False, timeout=120)
    for pod in pod_names():  # a run killed before its YAML was written
        run_podman("pod", "rm", "--force", pod, check=False, timeout=120)
    run_podman("volume", "rm", "--force", launcher_configmap_name(SERVER), check=False)
    room.clear_room(SERVER)
    shutil.rmtree(export_dir(SERVER), ignore_errors=True)
    shutil.rmtree(room.room_dir(SERVER), ignore_errors=True)


@pytest.fixture
def kube_room(tmp_path):
    """The room's config, the path of the YAML to play and a folder for the keys' files.
    Everything the test makes (pod, containers, ConfigMap volume, room and export folders, the
    copies of the keys) is removed afterwards, also when the test fails."""
    if not podman_status()[0]:
        pytest.skip(f"Podman cannot run containers here: {podman_status()[1]}")
    config = chat_server("cpu", name=SERVER)
    if not image_exists(config.image):
        pytest.skip(f"the lab's CPU image {config.image} is not built (vllm-lab build-image)")
    played = tmp_path / "room-podman43.yaml"
    _clean(played)  # an earlier run killed mid-way
    yield config, played, tmp_path
    _clean(played)
    for secret in (secret_name(SERVER), room_secret_name(SERVER)):  # the keys' copies
        shutil.rmtree(tmp_path / secret, ignore_errors=True)


def chat(key: str | None, client: httpx.Client, model: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(f"http://127.0.0.1:{PORT}/v1/chat/completions", headers=headers,
                       timeout=120, json={"model": model, "max_tokens": 4, "temperature": 0,
                                          "messages": [{"role": "user", "content": "Hi."}]})


def wait_ready(path: str, client: httpx.Client) -> float:
    """The readiness probe's GET, from outside the pod, until it answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        try:
            if client.get(f"http://127.0.0.1:{PORT}{path}", timeout=5).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        states = run_podman("ps", "--all", "--filter", f"pod={pod_names()[0]}", "--format",
                            "{{.Names}} {{.State}}").stdout
        assert "exited" not in states, states + run_podman(
            "logs", "--tail", "40", f"{pod_names()[0]}-vllm", check=False).stderr
        time.sleep(3)
    raise AssertionError(f"not ready after {READY_TIMEOUT_S} s")


def test_exported_room_runs_under_podman_kube_play(kube_room):
    config, played, tmp_path = kube_room
    alice = room.add_attendee(SERVER, "alice")
    bob = room.add_attendee(SERVER, "bob")

    out = vllm_lab("room", "export", "--k8s", "--server", SERVER, "--profile", "cpu")
    folder = export_dir(SERVER)
    manifests_text = (folder / MANIFESTS).read_text()
    secrets_text = (folder / SECRETS).read_text()
    assert oct((folder / SECRETS).stat().st_mode & 0o777) == "0o600"
    assert alice not in manifests_text and alice not in out and bob not in out
    api_key = secret_files(secrets_text)[secret_name(SERVER)][KEY_ITEM]
    assert api_key not in manifests_text and api_key not in out
    deployment = next(d for d in kube_documents(manifests_text) if d["kind"] == "Deployment")
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health"

    secret_dirs = kubelet_put(secrets_text, tmp_path)
    played.write_text(podman_43_variant(manifests_text, secret_dirs))
    proc = run_podman("kube", "play", "--replace", str(played), check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(pod_names()) == 1

    with httpx.Client() as client:
        took = wait_ready(probe["path"], client)
        print(f"ready {took:.0f} s after podman kube play")
        assert chat(alice, client, config.model_name).status_code == 200
        assert chat(bob, client, config.model_name).status_code == 200
        assert client.get(f"http://127.0.0.1:{PORT}/v1/models", timeout=30,
                          headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
        assert chat(None, client, config.model_name).status_code == 401
        assert chat("room-not-a-key", client, config.model_name).status_code == 401
        assert client.get(f"http://127.0.0.1:{PORT}/metrics", timeout=30).status_code == 401

        # Revoke as on a cluster: the room command, the export again, the new Secret in place.
        room.revoke_attendee(SERVER, "alice")
        again = vllm_lab("room", "export", "--k8s", "--server", SERVER, "--profile", "cpu")
        assert "kept from the earlier export" in again  # the instructor key stays the same
        new_secrets = (folder / SECRETS).read_text()
        assert secret_files(new_secrets)[secret_name(SERVER)][KEY_ITEM] == api_key
        assert alice not in new_secrets
        kubelet_put(new_secrets, tmp_path)
        assert chat(alice, client, config.model_name).status_code == 401
        assert chat(bob, client, config.model_name).status_code == 200
        room_file = secret_dirs[room_secret_name(SERVER)] / "keys.json"
        assert alice not in room_file.read_text()

    down = run_podman("kube", "down", str(played), check=False, timeout=120)
    assert down.returncode == 0, down.stderr
    assert pod_names() == []
    assert run_podman("ps", "--all", "--format", "{{.Names}}").stdout.count(
        container_name(SERVER)) == 0
    # Podman 4.3 keeps the ConfigMap's volume after `kube down` (the docs say so): removed here.
    gone = run_podman("volume", "rm", launcher_configmap_name(SERVER), check=False)
    assert gone.returncode == 0, gone.stderr
