"""lab_helpers.bench without a server: loads, GuideLLM's own argument models, the tidy table
read from a real GuideLLM report (tests/data), SLO verdicts, capacity planning, plots, and the
tuning variants' command lines."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from lab_helpers import bench
from lab_helpers.errors import LabError
from lab_helpers.server.config import ServerConfig

REPORT = Path(__file__).resolve().parents[1] / "data" / "guidellm-0.8.1-report.json"


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(REPORT.read_text())


@pytest.fixture(scope="module")
def report():
    return bench.load_report(REPORT)


@pytest.fixture(scope="module")
def frame(report):
    return bench.report_frame(report)


# -- loads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: bench.concurrent([]),
    lambda: bench.concurrent([0, 4]),
    lambda: bench.constant([]),
    lambda: bench.poisson([-1.0]),
    lambda: bench.sweep(1),
    lambda: bench.concurrent([4], max_requests=None, max_seconds=None),
    lambda: bench.concurrent([4], max_requests=0),
    lambda: bench.concurrent([4], max_seconds=-5),
    lambda: bench.concurrent([4], max_error_rate=1.5),
    lambda: bench.synchronous(output_tokens=0),
    lambda: bench.Load(profile="burst"),  # type: ignore[arg-type]
])
def test_bad_loads_are_refused_with_a_fix(make):
    with pytest.raises(bench.BenchConfigError) as info:
        make()
    assert isinstance(info.value, LabError) and info.value.fix


@pytest.mark.parametrize("load, kind, levels", [
    (bench.synchronous(), "synchronous", 1),
    (bench.concurrent([1, 4, 16]), "concurrent", 3),
    (bench.constant([1.0, 2.5]), "constant", 2),
    (bench.poisson(3), "poisson", 1),
    (bench.sweep(5), "sweep", 5),
])
def test_loads_become_valid_guidellm_arguments(load, kind, levels, tmp_path):
    """GuideLLM's own pydantic models accept what a Load produces (no server needed)."""
    load = bench.Load(**{**load.__dict__, "max_seconds": 30, "max_error_rate": 0.1})
    target = bench.Target("http://127.0.0.1:9", "m", str(tmp_path), api_key="k", label="t")
    args = bench.run.scenario(target, load, tmp_path).get_benchmarks()[0]
    assert args.profile.kind == kind
    assert load.levels == levels
    kinds = {c.kind for c in args.constraints}
    assert kinds == {"max_requests", "max_duration", "max_global_error_rate"}
    assert args.backend.api_key.get_secret_value() == "k"
    assert args.backend.request_format == "/v1/completions"
    assert args.backend.timeout_connect == bench.run.CONNECT_TIMEOUT_S > 5  # GuideLLM's is 5 s
    assert args.data[0].prompt_tokens == load.prompt_tokens
    assert [o.kind for o in args.outputs] == ["json", "csv"]


def test_target_repr_hides_the_key():
    target = bench.Target("http://x", "m", "/tmp", api_key="secret-key-123")
    assert "secret-key-123" not in repr(target)


# -- the table read from GuideLLM's report ----------------------------------------------------


def test_frame_has_one_row_per_benchmark_with_guidellm_numbers(raw, frame):
    assert len(frame) == len(raw["benchmarks"]) >= 2
    for row, b in zip(frame.to_dict("records"), raw["benchmarks"], strict=True):
        m = b["metrics"]
        assert row["load"] == b["config"]["strategy"]["streams"]
        assert row["requests_ok"] == m["request_totals"]["successful"]
        assert row["requests_errored"] == m["request_totals"]["errored"]
        assert row["requests_per_s"] == pytest.approx(m["requests_per_second"]["total"]["mean"])
        assert row["output_tokens_per_s"] == pytest.approx(
            m["output_tokens_per_second"]["total"]["mean"])
        for p in ("p50", "p95", "p99"):
            succ = "successful"
            assert row[f"ttft_{p}_ms"] == pytest.approx(
                m["time_to_first_token_ms"][succ]["percentiles"][p])
            assert row[f"itl_{p}_ms"] == pytest.approx(
                m["inter_token_latency_ms"][succ]["percentiles"][p])
            assert row[f"latency_{p}_s"] == pytest.approx(
                m["request_latency"][succ]["percentiles"][p])
    assert list(frame.columns) == bench.report.COLUMNS


def test_distributions_hold_one_value_per_kept_request(raw, report):
    ttft = bench.distributions(report)
    kept = sum(len(b["requests"]["successful"]) for b in raw["benchmarks"])
    assert len(ttft) == kept > 0
    assert (ttft["time_to_first_token_ms"] > 0).all()


# -- SLO verdicts and capacity, on the real report --------------------------------------------


def test_verdicts_follow_the_thresholds(frame):
    row = frame.iloc[0]
    loose = bench.SLO(ttft_p95_ms=row["ttft_p95_ms"] + 1, latency_p95_s=row["latency_p95_s"] + 1,
                      min_requests_per_s=row["requests_per_s"])
    tight = bench.SLO(ttft_p95_ms=row["ttft_p95_ms"], latency_p95_s=row["latency_p95_s"],
                      min_requests_per_s=row["requests_per_s"] * 1.01)
    ok, bad = bench.verdicts(frame, loose).iloc[0], bench.verdicts(frame, tight).iloc[0]
    assert ok["ttft_ok"] and ok["latency_ok"] and ok["throughput_ok"] and ok["meets_all"]
    assert not bad["ttft_ok"] and not bad["latency_ok"] and not bad["throughput_ok"]
    assert not bad["meets_latency"] and not bad["meets_all"]


def test_capacity_is_the_fastest_level_within_the_latency_targets(frame):
    generous = bench.SLO(ttft_p95_ms=1e9, latency_p95_s=1e9)
    cap = bench.capacity(frame, generous)
    assert cap is not None
    assert cap.requests_per_s == pytest.approx(frame["requests_per_s"].max())
    # Only the slower level within the latency target: capacity falls to that level.
    slow = frame.loc[frame["requests_per_s"].idxmin()]
    fast = frame.loc[frame["requests_per_s"].idxmax()]
    # The recorded report (tests/data): more streams, later first tokens. A p95 TTFT target
    # between the two levels keeps only the slower one.
    assert slow["benchmark"] != fast["benchmark"]
    assert slow["ttft_p95_ms"] < fast["ttft_p95_ms"]
    only_slow = bench.SLO(ttft_p95_ms=(slow["ttft_p95_ms"] + fast["ttft_p95_ms"]) / 2,
                          latency_p95_s=1e9)
    slow_cap = bench.capacity(frame, only_slow)
    assert slow_cap is not None and slow_cap.benchmark == slow["benchmark"]
    assert slow_cap.requests_per_s == pytest.approx(slow["requests_per_s"])
    want = 10 * cap.requests_per_s + 0.001
    assert bench.servers_needed(cap, want) == 11
    assert bench.servers_needed(cap, cap.requests_per_s) == 1


def test_no_level_within_targets_means_no_number_of_servers(frame):
    impossible = bench.SLO(ttft_p95_ms=0.001, latency_p95_s=0.001)
    assert bench.capacity(frame, impossible) is None
    assert bench.servers_needed(None, 10) is None
    assert "would not help" in bench.plan(frame, 10, impossible)
    with pytest.raises(ValueError):
        bench.servers_needed(None, 0)


def test_plan_names_the_servers_needed(frame):
    generous = bench.SLO(ttft_p95_ms=1e9, latency_p95_s=1e9, min_requests_per_s=1e9)
    cap = bench.capacity(frame, generous)
    text = bench.plan(frame, 25, generous)
    assert f"need {math.ceil(25 / cap.requests_per_s)} such servers" in text
    assert "misses throughput" in text


# -- plots -----------------------------------------------------------------------------------


def test_plots_draw_one_line_per_run_and_percentile(frame, report):
    two = bench.combine(frame, frame.assign(run="other"))
    fig = bench.plot_throughput(two)
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
    fig = bench.plot_latency(two)
    assert all(len(ax.get_lines()) == 2 * 3 + 1 for ax in fig.axes)  # + the SLO line
    fig = bench.plot_latency_throughput(two)
    assert len(fig.axes[0].get_lines()) == 2 + 2
    fig = bench.plot_distributions(bench.distributions(report),
                                   bench.distributions(report, "inter_token_latency_ms"))
    assert all(len(ax.patches) > 0 for ax in fig.axes)


def test_level_times_come_from_the_report(raw, report):
    times = bench.level_times(report)
    assert [t[1] for t in times] == [b["start_time"] for b in raw["benchmarks"]]
    assert all(end > start for _, start, end in times)


# -- tuning variants ---------------------------------------------------------------------------


def _base(tmp_path: Path) -> ServerConfig:
    return ServerConfig(model=str(tmp_path), name="chat", port=18000, max_model_len=8192,
                        enable_tools=True, tool_call_parser="hermes")


def test_cpu_variants_change_one_thing_each(tmp_path):
    base = _base(tmp_path)
    variants = bench.cpu_variants(base)
    assert variants[0].config == base and variants[0].label == "default"
    assert len(variants) >= 4
    base_argv, base_env = base.vllm_args(), base.server_env()
    for v in variants[1:]:
        argv, env = v.config.vllm_args(), v.config.server_env()
        changed = (set(argv) ^ set(base_argv)) | {k for k in env.keys() | base_env.keys()
                                                  if env.get(k) != base_env.get(k)}
        assert changed, v.label
        assert v.server_name.startswith("bench-") and len(v.server_name) <= 41
    names = [v.server_name for v in variants]
    assert len(set(names)) == len(names)
    reserve = next(v for v in variants if v.label == "reserve-1-core")
    assert reserve.config.server_env()["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"


def test_tuned_cpu_config_is_int8_weights_and_torch_compile(tmp_path):
    from lab_helpers.models import INT8_CHAT_MODEL
    from lab_helpers.server.config import CPU_IMAGE
    from lab_helpers.server.image import image_for

    base = _base(tmp_path).replace(image=CPU_IMAGE)
    by_label = {v.label: v for v in bench.cpu_variants(base)}
    int8 = by_label["int8-weights"].config
    assert Path(int8.model).name == INT8_CHAT_MODEL
    assert int8.model_name == base.model_name  # clients send the same model name
    compiled = by_label["compiled"].config
    assert compiled.image == image_for(compiler=True)  # the default image has no g++
    assert "--enforce-eager" in base.vllm_args() and "--enforce-eager" not in compiled.vllm_args()

    tuned = bench.cpu_tuned(base)
    assert tuned.label == "tuned" and tuned.change == " + ".join(bench.CPU_TUNED)
    argv = tuned.config.vllm_args()
    assert argv[argv.index("--served-model-name") + 1] == base.model_name
    assert "--enforce-eager" not in argv
    assert tuned.config.model == int8.model and tuned.config.image == compiled.image
    changed = {a for a in set(argv) ^ set(base.vllm_args()) if a.startswith("-")}
    assert changed == {"--enforce-eager"}  # otherwise only the model path differs


def test_gpu_variants_command_lines():
    from lab_helpers.server.config import ServerConfig

    base = ServerConfig(model="Qwen/Qwen2.5-3B-Instruct", device="gpu", dtype="auto",
                        enforce_eager=False, gpu_memory_utilization=0.85, offline=False)
    by_label = {v.label: v.config.vllm_args() for v in bench.gpu_variants(base)}
    assert by_label["default"][by_label["default"].index("--gpu-memory-utilization") + 1] == \
        "0.85"
    mem = by_label["mem-0.95"]
    assert mem[mem.index("--gpu-memory-utilization") + 1] == "0.95"
    length = by_label["max-len-8192"]
    assert length[length.index("--max-model-len") + 1] == "8192"
    tp = by_label["tp-2"]
    assert tp[tp.index("--tensor-parallel-size") + 1] == "2"
    assert "--enforce-eager" not in tp


def test_per_level_request_counts():
    load = bench.concurrent([1, 4], max_requests=[3, 8])
    assert load.constraint_args() == [{"kind": "max_requests", "count": [3, 8]}]
    with pytest.raises(bench.BenchConfigError, match="2 levels"):
        bench.concurrent([1, 4], max_requests=[3])
    with pytest.raises(bench.BenchConfigError):
        bench.concurrent([1, 4], max_requests=[3, 0])


def test_combined_changes_keep_each_change(tmp_path):
    base = _base(tmp_path)
    by_label = {v.label: v for v in bench.cpu_variants(base)}
    tuned = bench.combine_changes(base, [by_label["max-num-seqs-4"], by_label["reserve-1-core"],
                                         by_label["compiled"]])
    argv = tuned.config.vllm_args()
    assert argv[argv.index("--max-num-seqs") + 1] == "4"
    assert tuned.config.server_env()["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert "--enforce-eager" not in argv and "--enforce-eager" in base.vllm_args()
    assert tuned.change == "max-num-seqs-4 + reserve-1-core + compiled"


def test_every_cpu_variant_gets_the_executor_it_asks_for(tmp_path):
    """vLLM's CPU platform turns `--distributed-executor-backend uni` back into `mp` unless
    VLLM_ENABLE_V1_MULTIPROCESSING=0 (vllm/platforms/cpu.py): a variant that asks for `uni`
    without it would measure the worker process under another name."""
    import inspect

    from vllm.platforms import cpu

    source = inspect.getsource(cpu)  # still so in vLLM
    assert '"VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "1"' in source
    assert 'distributed_executor_backend = "mp"' in source
    executors = {}
    for variant in bench.cpu_variants(_base(tmp_path)):
        argv = variant.config.vllm_args()
        asked = [argv[i + 1] for i, a in enumerate(argv) if a == "--distributed-executor-backend"]
        multiprocessing = variant.config.server_env().get("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
        if asked and asked[-1] == "uni":
            assert multiprocessing == "0", variant
        executors[variant.label] = asked[-1] if asked else "mp"
    assert executors["default"] == "uni" and executors["worker-process"] == "mp"


def test_peer_command_keeps_the_key_out_of_argv(tmp_path):
    from lab_helpers.bench import peer

    if not peer.available():
        with pytest.raises(peer.PeerUnavailable) as info:
            peer.command(tmp_path / "m.gguf", host="127.0.0.1", port=1, threads=2, parallel=4,
                         key_path=tmp_path / "k")
        assert info.value.fix == peer.INSTALL_FIX
        return
    argv = peer.command(tmp_path / "m.gguf", host="127.0.0.1", port=1, threads=2, parallel=4,
                        key_path=tmp_path / "k")
    assert argv[argv.index("--api-key-file") + 1] == str(tmp_path / "k")
    assert "--api-key" not in argv
    assert argv[argv.index("--parallel") + 1] == "4"
    assert argv[argv.index("--ctx-size") + 1] == str(4 * peer.CTX_PER_SLOT)


def test_the_gguf_is_the_bundled_smollm2():
    from lab_helpers.bench import peer

    path = peer.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6


def test_lab_test_installs_the_peer():
    """`./lab test` installs llama-server, so the peer's tests and notebook section run there."""
    from lab_helpers.bench import peer

    if os.environ.get("VLLM_LAB_REQUIRE_PEER") != "1":
        pytest.skip("only under ./lab test (VLLM_LAB_REQUIRE_PEER=1), which installs llama-server")
    assert peer.available(), f"./lab test should have installed llama-server: {peer.INSTALL_FIX}"
    assert peer.gguf_path().is_file()


def _table(**tokens_per_s: float):
    import pandas as pd

    return pd.DataFrame({"output_tokens_per_s": tokens_per_s,
                         "requests_errored": {k: 0 for k in tokens_per_s}})


def test_winner_needs_to_beat_the_noise():
    table = _table(**{"default": 100.0, "float32": 66.0, "max-num-seqs-4": 108.0,
                      "default-again": 95.0})
    assert bench.noise(table) == pytest.approx(0.05)
    assert bench.winner(table) == "max-num-seqs-4"
    assert bench.winner(table, margin=bench.noise(table)) == "max-num-seqs-4"  # 8% > 5%
    assert bench.winner(table, margin=0.10) == "default"                      # 8% <= 10%
    errored = table.assign(requests_errored=[0, 0, 3, 0])
    assert bench.winner(errored) == "default"


def test_the_comparison_chart_has_a_bar_per_run_and_the_noise_band_around_the_baseline():
    table = _table(**{"default": 100.0, "int8-weights": 112.0, "default-again": 95.0})
    table["throughput_vs_baseline"] = table["output_tokens_per_s"] / 100.0
    ax = bench.plot_comparison(table, noise=bench.noise(table)).axes[0]
    bars = [p for p in ax.patches if p.get_height() < 1]  # barh: thin horizontal bars
    assert sorted(b.get_width() for b in bars) == [95.0, 100.0, 112.0]
    band = [p for p in ax.patches if p not in bars]
    assert len(band) == 1
    left, width = band[0].get_x(), band[0].get_width()
    assert (left, left + width) == (pytest.approx(95.0), pytest.approx(105.0))  # 100 +- 5 %
    assert [t.get_text() for t in ax.texts] == ["x1.00", "x1.12", "x0.95"]
    assert not bench.plot_comparison(table).axes[0].get_legend()  # no noise: no band


def test_repeat_is_the_same_config_under_another_server_name(tmp_path):
    base = bench.cpu_variants(_base(tmp_path))[0]
    again = bench.repeat(base)
    assert again.config == base.config and again.server_name != base.server_name


def test_native_bf16_reads_the_cpu_flags():
    assert bench.native_bf16("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert bench.native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not bench.native_bf16("flags : fpu avx2 avx512f\nbugs : avx512_bf16\n")


def test_a_benchmark_servers_owner_is_gone_exactly_when_its_process_is(lab_home):
    """The owner lock run_variant holds: another live process keeps it, a killed one drops it."""
    import subprocess
    import sys

    from lab_helpers.bench.fresh import _owner_path, _owning, owner_is_gone

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from lab_helpers.bench.fresh import _owning\n"
         "with _owning('bench-x'):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not owner_is_gone("bench-x")
    finally:
        holder.kill()
        holder.wait()
    assert owner_is_gone("bench-x")  # SIGKILL: no cleanup ran, the kernel released the lock
    with _owning("bench-x"):  # and this process holding it counts as alive too
        assert not owner_is_gone("bench-x")
    assert not _owner_path("bench-x").exists()  # a finished run leaves no owner file
    assert owner_is_gone("bench-never-started")


def test_fresh_cpu_servers_start_together_as_far_as_memory_allows(tmp_path):
    from lab_helpers.bench.fresh import MEMORY_MARGIN_BYTES, START_HEADROOM_BYTES
    from lab_helpers.server.checks import memory_needed

    configs = [v.config for v in bench.cpu_variants(_base(tmp_path))[:3]]
    each = memory_needed(configs[0]) + START_HEADROOM_BYTES
    assert bench.starts_at_once(configs, available=MEMORY_MARGIN_BYTES + 3 * each) == 3
    assert bench.starts_at_once(configs, available=MEMORY_MARGIN_BYTES + 2 * each) == 2
    assert bench.starts_at_once(configs, available=MEMORY_MARGIN_BYTES + each - 1) == 1  # never 0
    assert bench.starts_at_once([], available=10**12) == 0
    gpu = [v.config for v in bench.gpu_variants(_base(tmp_path).replace(device="gpu"))[:2]]
    assert bench.starts_at_once(gpu, available=10**12) == 1  # one GPU's memory: one at a time
