"""Trustworthy servers, on real servers in both runtimes.

- The API key never shows: not in `podman inspect`, `podman kube generate`, any process's
  command line or environment (`/proc/*/environ`: the API server, engine core and worker), the
  log or a preview; every route but /health needs it.
- A preview pasted into a clean shell starts a key-protected server or refuses; never an open one.
- A bad config never touches the running server of the same name.
- Two processes starting one server get one server.
- A `kill -9` of a local API server leaves no orphaned engine after stale cleanup.
- A test session leaves the learner's lab alone.
- Harmless error lines do not abort a start; a dead engine in a running container is caught.

The local servers here run in a throwaway lab home standing in for a learner's lab.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from lab_helpers import server
from lab_helpers.errors import (
    GPUUnavailable,
    ImageMissing,
    InsufficientMemory,
    ModelNotFound,
    PortInUse,
    ServerStartError,
)
from lab_helpers.paths import REPO_ROOT, lab_home, port_base
from lab_helpers.server.config import ServerConfig, chat_server
from lab_helpers.server.gpu import gpu_status
from lab_helpers.server.keys import key_file, new_api_key, read_api_key
from lab_helpers.server.kube import kube_yaml, pod_volumes
from lab_helpers.server.local import LAUNCHER, LocalRuntime, session_members
from lab_helpers.server.podman_cli import image_exists, podman_status, run_podman

pytestmark = pytest.mark.integration

LEARNER_PORT_BASE = port_base() + 30
needs_podman = pytest.mark.skipif(not podman_status()[0], reason="Podman is not usable here")


# -- helpers ----------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """What a fresh login shell has: no lab variables, no key."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ["HOME"], **extra}


def processes_holding(secret: str) -> list[str]:
    """Every process on this machine (containers' included: they share the kernel) whose
    command line or environment holds `secret`, as "PID file argv[0]"."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                text = (proc / part).read_bytes()
            except OSError:
                continue
            if secret.encode() in text:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                found.append(f"{proc.name} {part} {argv0}")
    return found


def lab_server_processes(srv: server.Server) -> list[int]:
    """The processes serving `srv`: the launcher and every descendant (engine core, worker)."""
    if srv.runtime.kind == "local":
        roots = [psutil.Process(pid) for pid in launchers_on_port(srv.config.port)]
    else:
        pid = run_podman("inspect", "--format", "{{.State.Pid}}",
                         srv.config.container_name).stdout.strip()
        roots = [psutil.Process(int(pid))]
    return [p.pid for root in roots for p in [root, *root.children(recursive=True)]]


def launchers_on_port(port: int) -> list[int]:
    """Lab launcher processes (API servers) serving `port`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(LAUNCHER).encode() in argv and str(port).encode() in argv:
            pids.append(int(proc.name))
    return pids


def assert_key_required(srv: server.Server) -> list[str]:
    """Every route the server lists needs the key, /health excepted. Returns the routes."""
    key = srv.api_key
    spec = httpx.get(f"{srv.base_url}/openapi.json", timeout=60,  # built on first request
                     headers={"Authorization": f"Bearer {key}"}).json()
    routes = sorted(spec["paths"])
    open_routes = []
    for route in routes:
        url = srv.base_url + route.replace("{response_id}", "x")
        for method in spec["paths"][route]:
            response = httpx.request(method.upper(), url, timeout=30, json={
                "model": srv.model_name, "prompt": "hi", "max_tokens": 1,
                "messages": [{"role": "user", "content": "hi"}]})
            if response.status_code != 401:
                open_routes.append(f"{method.upper()} {route} -> {response.status_code}")
    assert open_routes == ["GET /health -> 200"], open_routes
    # The routes that run the model or reveal it are among those checked.
    assert {"/invocations", "/tokenize", "/metrics", "/v1/chat/completions"} <= set(routes)
    ok = httpx.get(f"{srv.base_url}/metrics", headers={"Authorization": f"Bearer {key}"},
                   timeout=10)
    assert ok.status_code == 200
    return routes


def assert_key_hidden(srv: server.Server, runtime: server.Runtime) -> None:
    key = srv.api_key
    assert key.startswith("lab-") and len(key) > 20
    assert processes_holding(key) == [], "the key is on a command line or in an environment"
    # The check above can see them: the server's processes (API server, engine core, worker)
    # are all readable, and the launcher's environment carries the key *file's* variable.
    # (vLLM renames its engine and worker processes, which overwrites the start of their
    # /proc environ area; nothing in the lab ever puts the key into an environment.)
    members = lab_server_processes(srv)
    assert len(members) >= 3, members
    environs = [Path(f"/proc/{pid}/environ").read_bytes() for pid in members]
    assert any(b"LAB_API_KEY_FILE=" in e for e in environs)
    assert key not in srv.logs(tail=5000), "the key is in the server log"
    assert srv.config is not None
    assert key not in runtime.preview(srv.config), "the key is in the preview"
    key_path = Path(key_file(srv.name))
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert oct(key_path.parent.stat().st_mode & 0o777) == "0o700"


def bad_configs(good: ServerConfig, runtime_kind: str) -> list[tuple[ServerConfig, type]]:
    configs: list[tuple[ServerConfig, type]] = [
        (good.replace(model="/no/such/model-dir"), ModelNotFound),
        (good.replace(kv_cache_gib=4096), InsufficientMemory),
    ]
    if not gpu_status()[0]:
        configs.append((chat_server("gpu", name=good.name, port=good.port), GPUUnavailable))
    if runtime_kind == "podman":
        configs.append((good.replace(image="localhost/vllm-lab-no-such-image:0"), ImageMissing))
    return configs


def assert_bad_configs_leave_it_alone(runtime: server.Runtime, srv: server.Server) -> None:
    before = (srv.info.ident, srv.api_key)
    assert srv.config is not None
    for bad, error in bad_configs(srv.config, runtime.kind):
        with pytest.raises(error):
            runtime.start(bad)
        now = runtime.find(srv.name)
        assert now is not None and now.state == "running", f"{error.__name__} stopped it"
        assert (now.ident, srv.api_key) == before, f"{error.__name__} replaced it"
        assert srv.health()
    # A busy port (another program holds it) under the same name.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(PortInUse):
            runtime.start(srv.config.replace(port=sock.getsockname()[1],
                                             extra_args=("--max-num-seqs", "3")))
    now = runtime.find(srv.name)
    assert now is not None and (now.ident, srv.api_key) == before and srv.health()


START_SCRIPT = textwrap.dedent("""
    import json, sys
    from lab_helpers import server
    from lab_helpers.server.config import ServerConfig
    from lab_helpers.server.local import LocalRuntime
    cfg = ServerConfig(**json.loads(sys.argv[1]))
    if len(sys.argv) > 3:  # a wrapper script in front of the launcher (local runtime)
        plain = LocalRuntime.command
        LocalRuntime.command = lambda self, config: [sys.executable, sys.argv[3],
                                                     *plain(self, config)[1:]]
    srv = server.start(cfg, runtime=sys.argv[2])
    print(json.dumps({"reused": srv.reused, "ident": srv.info.ident}))
""")


def start_twice_at_once(config: ServerConfig, kind: str, env: dict[str, str],
                        wrapper: Path | None = None) -> list[dict]:
    """Two processes start the same server at the same moment (each through `wrapper`, a
    script that runs before the launcher, if given)."""
    blob = json.dumps(dataclasses.asdict(config))
    extra = [str(wrapper)] if wrapper else []
    procs = [subprocess.Popen([sys.executable, "-c", START_SCRIPT, blob, kind, *extra],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- the learner's local lab (a throwaway home) -------------------------------------------------


@pytest.fixture(scope="module")
def learner_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("learner-lab")


@pytest.fixture(scope="module")
def learner_env(learner_home) -> dict[str, str]:
    return {**os.environ, "VLLM_LAB_HOME": str(learner_home),
            "VLLM_LAB_PORT_BASE": str(LEARNER_PORT_BASE)}


@pytest.fixture(scope="module")
def learner_config() -> ServerConfig:
    # The test lab's prepared model, so the learner's home needs no model preparation.
    return chat_server("cpu", port=LEARNER_PORT_BASE)


@pytest.fixture
def as_learner(learner_env, monkeypatch):
    monkeypatch.setenv("VLLM_LAB_HOME", learner_env["VLLM_LAB_HOME"])
    monkeypatch.setenv("VLLM_LAB_PORT_BASE", learner_env["VLLM_LAB_PORT_BASE"])


WRAPPER = textwrap.dedent("""
    import os, sys
    # Lines a healthy start can carry: an ERROR-level line and a logged traceback.
    print("ERROR 11-29 20:00:00 [registry.py:88] Failed to import optional plugin: harmless",
          flush=True)
    print("Traceback (most recent call last):", flush=True)
    print('  File "plugin.py", line 1, in <module>', flush=True)
    print("ModuleNotFoundError: No module named 'optional_plugin'", flush=True)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
""")


@pytest.fixture(scope="module")
def pasted(learner_config, learner_env):
    """The learner's preview of a second server ("pasted"), pasted into a clean shell after
    its key file was made. Launched before the learner's chat server so the two cold starts
    overlap (test_local_preview_with_its_key_file_starts_a_protected_server checks it)."""
    config = learner_config.replace(name="pasted", port=LEARNER_PORT_BASE + 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_LAB_HOME", learner_env["VLLM_LAB_HOME"])
        mp.setenv("VLLM_LAB_PORT_BASE", learner_env["VLLM_LAB_PORT_BASE"])
        new_api_key(config.name)
        preview = LocalRuntime().preview(config)
    proc = subprocess.Popen(["bash", "-c", preview], env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    yield config, proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def learner_server(learner_config, learner_env, tmp_path_factory, pasted):
    """The learner's chat server, started by two processes at once: one server results.

    Its log opens with harmless error lines (an ERROR line and a logged traceback, printed by
    a wrapper in front of the launcher, which then execs the launcher in its place): the start
    must not abort on them (test_harmless_error_lines_do_not_abort_a_start). One start serves
    both checks.
    """
    wrapper = tmp_path_factory.mktemp("noisy-start") / "noisy_start.py"
    wrapper.write_text(WRAPPER)
    results = start_twice_at_once(learner_config, "local", learner_env, wrapper)
    assert sorted(r["reused"] for r in results) == [False, True], results
    assert results[0]["ident"] == results[1]["ident"]
    assert launchers_on_port(learner_config.port) == [int(results[0]["ident"])]
    yield int(results[0]["ident"])
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", "down", "--all"], env=learner_env,
                   check=False, timeout=120)


def learner_handle(learner_config) -> server.Server:
    runtime = LocalRuntime()
    info = runtime.find(learner_config.name)
    assert info is not None
    return server.Server(runtime, info, config=learner_config)


def test_local_preview_without_key_file_refuses(learner_config, tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_LAB_HOME", str(tmp_path / "fresh-lab"))
    config = learner_config.replace(port=server.free_port())
    preview = LocalRuntime().preview(config)
    assert not key_file(config.name).exists()
    began = time.monotonic()
    proc = subprocess.run(["bash", "-c", preview], env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "refusing to start vLLM" in proc.stderr and "vllm-lab up" in proc.stderr
    assert time.monotonic() - began < 60
    assert not server.check_health(config.base_url)


def test_two_processes_start_one_local_server(learner_server, learner_config):
    assert launchers_on_port(learner_config.port) == [learner_server]


def test_local_preview_with_its_key_file_starts_a_protected_server(pasted, as_learner):
    # Right after the learner's start it overlapped: stopped here, before the checks below
    # that need free memory (a start's pre-flight check), so it never adds to them.
    config, proc = pasted
    try:
        deadline = time.monotonic() + 300
        while not server.check_health(config.base_url) and time.monotonic() < deadline:
            assert proc.poll() is None, "the pasted command exited"
            time.sleep(1)
        assert server.check_health(config.base_url)
        assert httpx.get(f"{config.base_url}/v1/models", timeout=10).status_code == 401
        assert httpx.post(f"{config.base_url}/invocations", timeout=30, json={
            "model": config.model_name, "messages": [{"role": "user", "content": "hi"}]},
        ).status_code == 401
        key = read_api_key(config.name)
        assert httpx.get(f"{config.base_url}/v1/models", timeout=10,
                         headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(proc.pid) == []


def test_harmless_error_lines_do_not_abort_a_start(learner_server, learner_config,
                                                   as_learner):
    # The learner's server was started through the noisy wrapper (`learner_server`): that
    # start succeeded, so the lines did not abort it; here they are in the log it watched.
    srv = learner_handle(learner_config)
    log = srv.logs(tail=5000)
    assert "harmless" in log and "No module named 'optional_plugin'" in log
    assert srv.health()


def test_local_key_never_shows_and_guards_every_route(learner_server, learner_config,
                                                      as_learner):
    srv = learner_handle(learner_config)
    assert_key_hidden(srv, LocalRuntime())
    assert_key_required(srv)


def test_local_bad_configs_leave_the_running_server_alone(learner_server, learner_config,
                                                          as_learner):
    assert_bad_configs_leave_it_alone(LocalRuntime(), learner_handle(learner_config))


def test_a_test_session_leaves_the_learners_lab_alone(learner_server, learner_config,
                                                      learner_env, tmp_path):
    key_before = (Path(learner_env["VLLM_LAB_HOME"]) / "servers" / "chat.key").read_text()
    # A learner whose shell points at their lab runs the tests: a pytest session, then the
    # cleanup `./lab test` does, with the environment `./lab test` exports. Its test lab is
    # new but has the prepared models (linked: `./lab test` prepares them before the tests,
    # and preparing the chat model again here would cost ~30 s of GGUF conversion).
    test_lab = tmp_path / "test-lab"
    test_lab.mkdir()
    (test_lab / "models").symlink_to(lab_home() / "models", target_is_directory=True)
    session_env = {**learner_env, "VLLM_LAB_TEST_HOME": str(test_lab)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_cli.py", "-q",
                           "-p", "no:cacheprovider"], cwd=REPO_ROOT, env=session_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    exports = [line.strip() for line in (REPO_ROOT / "lab").read_text().splitlines()
               if line.strip().startswith("export VLLM_LAB_")]
    assert {line.split("=")[0] for line in exports} >= {"export VLLM_LAB_HOME",
                                                        "export VLLM_LAB_PORT_BASE"}
    cleanup = "; ".join(exports + [f"{sys.executable} -m lab_helpers.cli down --stale",
                                   f"{sys.executable} -m lab_helpers.cli down --all"])
    subprocess.run(["bash", "-c", cleanup], env=session_env, check=True, timeout=300,
                   capture_output=True)
    assert launchers_on_port(learner_config.port) == [learner_server]
    assert (Path(learner_env["VLLM_LAB_HOME"]) / "servers" / "chat.key").read_text() == key_before
    assert server.check_health(f"http://127.0.0.1:{learner_config.port}")


def test_a_test_session_stops_only_the_servers_it_started(chat_srv):
    # Another pytest session in the same test lab (a developer's unit tests beside a running
    # suite) must not stop the servers that were running when it began.
    ident = chat_srv.info.ident
    env = {k: v for k, v in os.environ.items() if k != "VLLM_LAB_TEST_KEEP_SERVERS"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_cli.py", "-q",
                           "-p", "no:cacheprovider"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    still = server.get(chat_srv.name)
    assert still.info.ident == ident and still.health()


def test_kill_9_leaves_no_orphans_after_stale_cleanup(learner_server, learner_config,
                                                      learner_env, as_learner):
    members = session_members(learner_server)
    assert len(members) >= 3, "API server, engine core and worker"
    os.kill(learner_server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while learner_server in session_members(learner_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphans = session_members(learner_server)
    assert orphans, "vLLM's engine processes outlive a killed API server"
    status = subprocess.run([sys.executable, "-m", "lab_helpers.cli", "status"],
                            env=learner_env, capture_output=True, text=True, check=True).stdout
    assert "orphaned" in status
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", "down", "--stale"],
                   env=learner_env, check=True, timeout=120, capture_output=True)
    assert session_members(learner_server) == []
    assert LocalRuntime().find(learner_config.name) is None


# -- Podman: the test lab's chat server -----------------------------------------------------


@pytest.fixture(scope="module")
def podman_chat(chat_srv):
    if chat_srv.runtime.kind != "podman":
        pytest.skip("the shared chat server is not in Podman here")
    return chat_srv


@needs_podman
def test_podman_key_never_shows_and_guards_every_route(podman_chat):
    srv = podman_chat
    assert srv.config is not None
    assert_key_hidden(srv, srv.runtime)
    key = srv.api_key
    inspect = run_podman("inspect", srv.config.container_name).stdout
    assert key not in inspect
    assert "VLLM_API_KEY" not in inspect
    kube = kube_yaml(srv.name)
    assert key not in kube
    secrets = [v for v in pod_volumes(kube) if "secret" in v]
    assert secrets and not any(str(key_file(srv.name)) in json.dumps(v)
                               for v in pod_volumes(kube))
    # the launcher's two files (keyguard.py, room_guard.py) come from one ConfigMap, no host path
    launcher = [v for v in pod_volumes(kube) if "configMap" in v]
    assert len(launcher) == 2 and not any(str(LAUNCHER.parent) in json.dumps(v)
                                          for v in pod_volumes(kube))
    assert_key_required(srv)


@needs_podman
def test_podman_ps_shows_the_server_healthy(podman_chat):
    status = run_podman("ps", "--filter", f"name=^{podman_chat.config.container_name}$",
                        "--format", "{{.Status}}").stdout
    assert "(healthy)" in status


@needs_podman
def test_podman_preview_without_key_file_refuses(podman_chat, tmp_path):
    config = podman_chat.config.replace(name="pasted-podman", port=server.free_port())
    preview = server.PodmanRuntime().preview(config)
    assert not key_file(config.name).exists()
    proc = subprocess.run(["bash", "-c", preview], env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    try:
        assert proc.returncode != 0
        assert "pasted-podman.key" in proc.stderr
        running = run_podman("ps", "--filter", f"name=^{config.container_name}$",
                             "--format", "{{.State}}").stdout.strip()
        assert running == ""
    finally:
        run_podman("rm", "--force", config.container_name, check=False)


@needs_podman
def test_podman_bad_configs_leave_the_running_server_alone(podman_chat):
    assert_bad_configs_leave_it_alone(podman_chat.runtime, podman_chat)


@dataclasses.dataclass
class FailedStart:
    error: BaseException | None = None
    seen: list[float] = dataclasses.field(default_factory=list)  # when the error line came
    failed_at: float | None = None


@pytest.fixture(scope="module")
def nocompiler_start(podman_chat):
    """torch.compile without a compiler, started in a thread (waited for by
    test_dead_engine_in_a_running_container_is_caught), so that its slow way to the error
    overlaps test_two_processes_start_one_podman_server's start."""
    config = podman_chat.config.replace(name="nocompiler", port=server.free_port(),
                                        enforce_eager=False)
    assert image_exists(config.image)
    outcome = FailedStart()

    def watch(line: str) -> None:
        if not outcome.seen and "InvalidCxxCompiler" in line:
            outcome.seen.append(time.monotonic())

    def attempt() -> None:
        try:
            podman_chat.runtime.start(config, timeout=600, on_log=watch)
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            outcome.error = exc
        outcome.failed_at = time.monotonic()

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    yield thread, outcome
    thread.join(timeout=660)
    server.PodmanRuntime().remove("nocompiler")


@needs_podman
def test_two_processes_start_one_podman_server(podman_chat, nocompiler_start):
    config = podman_chat.config.replace(name="twin", port=port_base() + 22)
    try:
        results = start_twice_at_once(config, "podman", dict(os.environ))
        assert sorted(r["reused"] for r in results) == [False, True], results
        assert results[0]["ident"] == results[1]["ident"]
        names = run_podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
        assert names.count(config.container_name) == 1
    finally:
        server.PodmanRuntime().remove("twin")


@needs_podman
def test_dead_engine_in_a_running_container_is_caught(podman_chat, nocompiler_start):
    """torch.compile without a compiler: the engine dies while the container may still run (with
    the model in a worker process it stayed "running"; inside the engine core, the API server
    exits too). Either way the start fails within seconds, with the compiler named as the
    cause (found above the traceback's last lines)."""
    thread, outcome = nocompiler_start
    thread.join(timeout=660)
    assert not thread.is_alive(), "the start neither failed nor ended"
    err = outcome.error
    assert isinstance(err, ServerStartError), repr(err)
    assert outcome.seen, f"{err.what}\n{err.details[-2000:]}"
    assert outcome.failed_at is not None
    noticed = outcome.failed_at - outcome.seen[0]
    assert noticed <= 15, f"noticed {noticed:.1f} s after the error"
    assert "compiler" in err.cause and "build-image --compiler" in err.cause
    assert podman_chat.runtime.find("nocompiler") is None
