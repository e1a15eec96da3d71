"""Run GuideLLM 0.8 against a lab server (or any OpenAI-compatible server) from Python.

    from lab_helpers import bench
    target = bench.Target.from_server(srv)            # URL, model, API key, local tokenizer
    run = bench.run_benchmark(target, bench.concurrent([1, 4], max_requests=16))
    run.frame                                         # one row per level, from GuideLLM's report
    run.json_path, run.csv_path                       # GuideLLM's own JSON and CSV

Decisions:
- GuideLLM's own entry point, `benchmark_generative_text`, does the work; its report object
  (`GenerativeBenchmarksReport`) is kept as is and every figure in `run.frame` is read from it
  (report.py). Nothing is re-computed.
- Offline: synthetic prompts are sized with the model's *local* tokenizer directory
  (`HF_HUB_OFFLINE=1`), and requests use `/v1/completions`, which vLLM and llama.cpp's
  `llama-server` both accept as GuideLLM sends it.
- Lab servers require their API key on every route: it goes to GuideLLM's OpenAI backend as
  `api_key` (a Bearer token). The key is checked with one request *before* the benchmark
  (through `lab_helpers.connect`), so a wrong key fails in a second with a clear error
  instead of a report full of 401s.
- GuideLLM is async and a notebook kernel already runs an event loop, so the run gets its own
  loop in a worker thread. GuideLLM spawns worker processes for the load; on a 2-core machine
  more than two only steal CPU from the server being measured, so their number is capped.
- The progress bar (tqdm: a widget in a notebook, text in a terminal) advances one step per
  level, fed by GuideLLM's own progress log records, which carry each level's live counts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..connect import QUICK_TIMEOUT_S, Connection, ServerRequestError
from ..errors import LabError
from ..paths import lab_home
from ..server.config import chat_server
from ..server.room_settings import benchmark_refusal
from .load import BenchConfigError, Load
from .report import report_frame

if TYPE_CHECKING:
    import pandas as pd
    from guidellm.benchmark.schemas import GenerativeBenchmarksReport

    from ..server import Server

# GuideLLM's data worker makes 4096 synthetic prompts ahead of demand by default: on 2 cores
# that is a core taken from the server under test for the first seconds of every run (and
# for all of a run limited by time only). A few dozen ahead keep up with any load here.
DATA_PREFETCH = 64
# GuideLLM spawns up to 10 load-generating processes by default; 2 are plenty on 2 cores.
MAX_WORKER_PROCESSES = max(1, min(2, os.cpu_count() or 1))
REQUEST_FORMAT = "/v1/completions"
# GuideLLM gives a connection 5 s by default. A server started a moment before, on 2 busy
# cores (module 5 starts fresh servers together), has been measured taking longer to accept
# the first of 16 connections opened at once: 3 of 32 requests "errored" with ConnectTimeout in
# one full test run. Slow is a measurement (it shows in the time to first token), not an error.
CONNECT_TIMEOUT_S = 30.0


class BenchError(LabError):
    """A benchmark could not start or did not produce a report."""


@dataclass(frozen=True)
class Target:
    """Where the load goes: an OpenAI-compatible server, its model name and key, and the
    local tokenizer directory GuideLLM uses to size synthetic prompts."""

    base_url: str
    model: str
    tokenizer: str
    api_key: str = ""
    label: str = ""

    def __repr__(self) -> str:  # the key never shows
        return (f"Target(base_url={self.base_url!r}, model={self.model!r}, "
                f"label={self.label!r}, tokenizer={self.tokenizer!r})")

    @classmethod
    def from_server(cls, srv: Server, *, tokenizer: str | None = None,
                    label: str | None = None) -> Target:
        """A running lab server; its tokenizer is its own model directory when local."""
        if tokenizer is None:
            if srv.config is not None and srv.config.model_path is not None:
                tokenizer = str(srv.config.model_path)
            else:
                tokenizer = default_tokenizer()
        return cls(base_url=srv.base_url, model=srv.model_name, tokenizer=tokenizer,
                   api_key=srv.api_key, label=label or srv.name)


def default_tokenizer() -> str:
    """The bundled chat model's directory (prepared on first use): SmolLM2's tokenizer."""
    return chat_server("cpu").model


@dataclass
class BenchRun:
    """One GuideLLM run: its report, the files it wrote and the tidy table read from it."""

    label: str
    load: Load
    report: GenerativeBenchmarksReport
    out_dir: Path
    json_path: Path
    csv_path: Path
    summary_path: Path
    seconds: float
    frame: pd.DataFrame = field(repr=False)
    window: tuple[float, float] = (0.0, 0.0)
    """When GuideLLM ran: wall-clock seconds (time.time()) at its start and end."""
    server_window: tuple[float, float] | None = None
    """When the run's fresh server started (`bench.fresh`): wall-clock start and healthy."""


def check_target(target: Target, timeout: float = QUICK_TIMEOUT_S) -> None:
    """One authenticated GET /v1/models: reachable, key accepted, model served.

    With the target's own key, never re-read: GuideLLM sends that key, so it is the one that
    must work. A failure is the connection layer's error, raised as a BenchError.
    """
    conn = Connection(target.base_url, api_key=target.api_key,
                      key_hint="build the target from the running server: "
                               "bench.Target.from_server(srv)")
    try:
        conn.require_model(target.model, timeout=timeout)
    except ServerRequestError as exc:
        raise BenchError(exc.what, cause=exc.cause, fix=exc.fix) from exc


def scenario(target: Target, load: Load, out_dir: Path) -> Any:
    """GuideLLM's BenchmarkScenario for this target and load (JSON + CSV outputs)."""
    from guidellm.schemas.benchmark import BenchmarkArgs, BenchmarkScenario

    backend: dict[str, Any] = {"kind": "openai_http", "target": target.base_url,
                               "model": target.model, "request_format": REQUEST_FORMAT,
                               "timeout_connect": CONNECT_TIMEOUT_S}
    if target.api_key:
        backend["api_key"] = target.api_key
    spec = BenchmarkArgs(
        backend=backend,
        profile=load.profile_args(),
        constraints=load.constraint_args(),
        tokenizer={"kind": "huggingface_auto", "model": target.tokenizer},
        data=load.data_args(),
        data_loader={"kind": "pytorch", "prefetch_factor": DATA_PREFETCH},
        outputs=[{"kind": "json", "path": out_dir / "benchmarks.json"},
                 {"kind": "csv", "path": out_dir / "benchmarks.csv"}],
    )
    return BenchmarkScenario(metadata={"labels": {"lab": "vllm-lab", "run": target.label}},
                             spec=spec)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def results_dir() -> Path:
    """Where runs are kept unless told otherwise: <lab home>/benchmarks."""
    path = lab_home() / "benchmarks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_progress_record(record: Any) -> bool:
    return "progress_status" in record["extra"]


class _Progress:
    """A tqdm bar over the load's levels, fed by GuideLLM's progress log records."""

    def __init__(self, load: Load, label: str, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.sink_id: int | None = None
        if not enabled:
            return
        from loguru import logger
        from tqdm.auto import tqdm

        self.bar = tqdm(total=load.levels, desc=label, unit="level")
        # enqueue: GuideLLM pickles the logger into its worker processes; a queued sink
        # stays in this process (and a module-level filter pickles).
        self.sink_id = logger.add(self._on_record, level="INFO", format="{message}",
                                  filter=_is_progress_record, enqueue=True,
                                  context=multiprocessing.get_context("spawn"))

    def _on_record(self, message: Any) -> None:
        record = message.record
        status = record["extra"]["progress_status"]
        text = record["message"].split(": ", 1)[-1]
        if self.bar is None:
            return
        if status == "completed":
            self.bar.update(1)
        self.bar.set_postfix_str(text[:90], refresh=True)

    def close(self) -> None:
        if self.sink_id is not None:
            from loguru import logger

            logger.remove(self.sink_id)
            self.sink_id = None
        if self.bar is not None:
            self.bar.close()


def quiet_guidellm(level: str | None = "WARNING") -> None:
    """GuideLLM logs every step to stderr at INFO; in a notebook the bar says enough."""
    from guidellm.logger import configure_logger
    from guidellm.settings import LoggingSettings

    configure_logger(LoggingSettings(console_log_level=level))


def run_benchmark(target: Target, load: Load, *, label: str | None = None,
                  out_dir: str | Path | None = None, progress: bool = True,
                  quiet: bool = True) -> BenchRun:
    """Run `load` against `target` with GuideLLM; return its report and the tidy table.

    Files: `benchmarks.json` and `benchmarks.csv` (GuideLLM's own) and `summary.csv` (the
    table) in `out_dir` (default: a new folder under <lab home>/benchmarks).
    """
    from guidellm.benchmark.entrypoints import benchmark_generative_text
    from guidellm.settings import settings

    if not isinstance(load, Load):
        raise BenchConfigError("load must be a bench.Load.",
                               fix="bench.concurrent([1, 4], max_requests=16)")
    refusal = benchmark_refusal(target.base_url)  # a joined room's server: everyone's
    if refusal is not None:
        raise BenchError(refusal.what, cause=refusal.cause, fix=refusal.fix)
    label = label or target.label or "run"
    if not Path(target.tokenizer).is_dir():
        raise BenchError(f"Tokenizer directory {target.tokenizer} does not exist.",
                         cause="GuideLLM sizes prompts with the model's local tokenizer",
                         fix="vllm-lab prepare-models  (then bench.Target.from_server(srv))")
    check_target(target)
    if out_dir is None:
        out_dir = results_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(label)}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings.max_worker_processes = MAX_WORKER_PROCESSES
    if quiet:
        quiet_guidellm()
    args = scenario(target, load, out)
    bar = _Progress(load, label, progress)
    began, began_at = time.monotonic(), time.time()
    try:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="guidellm") as pool:
            report, _outputs = pool.submit(
                asyncio.run, benchmark_generative_text(args, progress=False)).result()
    except LabError:
        raise
    except Exception as exc:
        if not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty run folder behind
        raise BenchError(
            f"GuideLLM stopped: {type(exc).__name__}: {exc}",
            cause="the server went away during the run, or GuideLLM rejected the load",
            fix="check the server with `vllm-lab status`, then run again",
        ) from exc
    finally:
        bar.close()
    seconds = time.monotonic() - began
    if not report.benchmarks:
        raise BenchError("GuideLLM finished without a single completed benchmark.",
                         cause="every level was cut short (errors or limits)",
                         fix="check the server with `vllm-lab status`; raise max_requests")
    frame = report_frame(report, label=label)
    summary = out / "summary.csv"
    frame.to_csv(summary, index=False)
    return BenchRun(label=label, load=load, report=report, out_dir=out,
                    json_path=out / "benchmarks.json", csv_path=out / "benchmarks.csv",
                    summary_path=summary, seconds=seconds, frame=frame,
                    window=(began_at, began_at + seconds))

