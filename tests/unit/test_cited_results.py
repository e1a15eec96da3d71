"""Every results file the README, the docs and the notebooks cite exists, with the figures
they quote from it where the text names a key.

A figure in the text is either computed in the notebook or names the file under
`benchmarks/results/` it comes from (a bare name such as `tuning_rounds.json` next to a
full path counts too). A glob (`tuning*.json`) must match at least one file; a cited script
(`benchmarks/x.py`) must exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from statistics import median

import pytest

from lab_helpers.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
CITED_FILE = re.compile(r"benchmarks/results/([\w*.-]+\.json)")
BARE_RESULT = re.compile(r"`([\w*-]+\.json)`")
CITED_SCRIPT = re.compile(r"benchmarks/([\w-]+\.py)")


def texts() -> dict[str, str]:
    out = {"README.md": (REPO_ROOT / "README.md").read_text()}
    for doc in sorted((REPO_ROOT / "docs").glob("*.md")):
        out[f"docs/{doc.name}"] = doc.read_text()
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        out[notebook.name] = "\n".join("".join(c["source"]) for c in cells)
    return out


TEXTS = texts()


@pytest.mark.parametrize("where", sorted(TEXTS))
def test_every_cited_results_file_exists(where):
    text = TEXTS[where]
    cited = set(CITED_FILE.findall(text))
    cited |= {name for name in BARE_RESULT.findall(text)
              if any(Path(name).stem.startswith(Path(c).stem.rstrip("*")) for c in cited)}
    missing = sorted(name for name in cited if not list(RESULTS.glob(name)))
    assert missing == [], f"{where} cites results that are not in benchmarks/results/"
    scripts = set(CITED_SCRIPT.findall(text))
    assert sorted(s for s in scripts if not (REPO_ROOT / "benchmarks" / s).exists()) == []


def test_the_check_sees_a_missing_file():
    assert CITED_FILE.findall("see `benchmarks/results/nothing-here.json`") == \
        ["nothing-here.json"]
    assert not list(RESULTS.glob("nothing-here.json"))


def test_first_cell_figures_in_the_readme_are_the_results_file():
    result = json.loads((RESULTS / "first_cell.json").read_text())
    readme = TEXTS["README.md"]
    assert f"{result['first_cell_s']} s" in readme
    assert f"{result['cold_first_cell_s']:.0f} s cold" in readme


def test_module_1s_cold_start_figures_are_the_results_file():
    """Module 1's KV-cache section quotes the cold starts of benchmarks/startup.py."""
    medians = {r["runtime"]: r["cold_median_s"] for r in
               json.loads((RESULTS / "startup.json").read_text())["results"]}
    notebook = json.loads((REPO_ROOT / "notebooks" / "01_deploy_and_chat.ipynb").read_text())
    text = " ".join("".join(c["source"]) for c in notebook["cells"]).replace("\n", " ")
    assert (f"{medians['podman']:.0f} s in Podman, {medians['local']:.0f} s as a local process"
            in text)


def test_the_executor_figures_quoted_are_the_results_file():
    """Modules 1 and 5 quote how much sooner the lab's default starts than vLLM's worker
    process on CPU (benchmarks/executor.py), and the config and settings table the range."""
    result = json.loads((RESULTS / "executor.json").read_text())
    saved = sorted(result["start_s_saved_by_default"])[len(result["start_s_saved_by_default"]) // 2]
    for notebook, quoted in (("01_deploy_and_chat.ipynb", f"({saved:.0f} s shorter starts,"),
                             ("05_benchmark.ipynb", f"starts {saved:.0f} s sooner, `bench")):
        text = " ".join(TEXTS[notebook].split())
        assert quoted in text and "executor.json" in text, notebook
    starts = result["start_s"]
    quoted = (f"starts of {min(starts['default']):.0f}-{max(starts['default']):.0f} s instead of "
              f"{min(starts['worker-process']):.0f}-{max(starts['worker-process']):.0f} s")
    for source in ("config.py", "settings_table.py"):
        text = " ".join((REPO_ROOT / "lab_helpers" / "server" / source).read_text().replace(
            '"', " ").split())
        assert " ".join(quoted.split()) in text, source
    ratios = result["default_vs_worker_process_at_16"]
    assert min(ratios) >= result["targets"]["throughput_ratio"] - 0.05  # "the same, within noise"


# The figures a text quotes next to a results file (or, in docs/ENGINEERING.md's table of
# benchmarks, next to the script that writes it): (text, results file, key path(s), format).
# A key path is "/"-separated (list indices are numbers, `*` takes every entry); the format
# gets the values in order, as a str.format pattern or, for a sum, ratio or unit, a function.
ENG, NB1, NB3, NB5 = ("docs/ENGINEERING.md", "01_deploy_and_chat.ipynb",
                      "03_tool_calling.ipynb", "05_benchmark.ipynb")


QUOTED = [
    # first_cell.json: the README's figures are checked above
    (ENG, "first_cell.json", ("first_cell_s", "cold_first_cell_s", "target_s"),
     "{:.2f} s in Podman, against {:.1f} s cold (one run; target <= {:.0f} s)"),
    # startup.json, startup-with-compile.json (module 1's cold starts are checked above)
    (NB1, "startup.json", "results/1/cold_median_s", "medians of {:.0f} s in Podman"),
    (ENG, "startup.json", "results/0/cold_median_s", "eager: local {:.1f} s"),
    (ENG, "startup.json", "results/1/cold_median_s", "Podman {:.1f} s cold"),
    (ENG, "startup.json", "results/1/cold_s/*", lambda *s: f"(median of {len(s)},"),
    (ENG, "startup.json", "targets/cold_s", "target <= {:.0f} s); reuse"),
    (ENG, "startup.json", "targets/reuse_s", "(target <= {:.0f} s). With torch.compile"),
    (ENG, "startup.json", "results/*/reuse_s/*", lambda *r: f"reuse {min(r):.2f}-{max(r):.2f} s"),
    (NB1, "startup.json", "results/*/reuse_s/*",
     lambda *r: f"reused in {min(r):.2f}-{max(r):.2f} s (`benchmarks/results/startup.json`)"),
    ("README.md", "startup.json", ("results/1/cold_median_s", "results/*/reuse_s/*"),
     lambda cold, *r: f"# {cold:.0f} s cold; {min(r):.2f}-{max(r):.2f} s when a matching one "
                      "runs # (benchmarks/results/startup.json)"),
    *[(where, "startup.json", "results/*/cold_median_s",
       lambda *s, tail=tail: f"about {max(s):.0f} s" + tail) for where, tail in (
        (NB1, ", `benchmarks/results/startup.json`, instead of"),
        (NB1, " on 2 CPU cores and is reused"),
        (NB5, " on an idle machine (`benchmarks/results/startup.json`)"))],
    (ENG, "startup-with-compile.json", ("results/1/cold_median_s", "results/3/cold_median_s"),
     "With torch.compile: local {:.1f} s, Podman {:.1f} s"),
    *[(where, "startup-with-compile.json", ("results/1/cold_median_s", "results/3/cold_median_s"),
       lambda *s: f"{min(s):.0f}-{max(s):.0f} s") for where in (ENG, NB1, NB5)],
    # executor.json (the 9 s of modules 1 and 5 are checked above)
    (ENG, "executor.json", "start_s/default/*",
     lambda *s: f"starts of {min(s):.0f}-{max(s):.0f} s instead of"),
    (ENG, "executor.json", "start_s/worker-process/*",
     lambda *s: f"instead of {min(s):.0f}-{max(s):.0f} s, output tokens/s"),
    (ENG, "executor.json", "start_s/*/*",
     "starts {:.1f} / {:.1f} / {:.1f} s vs {:.1f} / {:.1f} / {:.1f} s"),
    (ENG, "executor.json", ("start_s_saved_by_default", "targets/start_s_saved"),
     lambda saved, target: f"({median(saved):.1f} s sooner, median; target >= {target:.0f} s)"),
    (ENG, "executor.json", ("default_vs_worker_process_at_16/*", "targets/throughput_ratio"),
     "tokens/s x{:.2f} / x{:.2f} / x{:.2f} (target >= {:.2f})"),
    (ENG, "executor.json", "default_vs_worker_process_at_16/*",
     "at 16 users x{:.2f} / x{:.2f} / x{:.2f} of the worker process's"),
    # chat_overhead.json
    (ENG, "chat_overhead.json", ("ttft_ratio", "targets/ttft_ratio_max"),
     "TTFT ratio {:.3f} (target <= {:.2f})"),
    (ENG, "chat_overhead.json", ("tokens_per_s_ratio", "targets/tokens_per_s_ratio_min"),
     "tokens/s ratio {:.3f} (target >= {:.2f})"),
    (ENG, "chat_overhead.json", ("raw/ttft_median_s", "raw/tokens_per_s_median"),
     lambda ttft, tps: f"raw: {ttft * 1000:.0f} ms, {tps:.1f} tok/s"),
    # cpu_defaults.json
    (ENG, "cpu_defaults.json", "ratios_new_over_old/tokens_per_s_ratio_at_1",
     "x{:.2f} output tokens/s for one user"),
    (ENG, "cpu_defaults.json", "ratios_new_over_old/tokens_per_s_ratio_at_16", "x{:.2f} for 16"),
    (ENG, "cpu_defaults.json", ("new_default/by_concurrency/16/ttft_p50_s",
                                "old_default/by_concurrency/16/ttft_p50_s"),
     "under load ({:.2f} vs {:.2f} s)"),
    (ENG, "cpu_defaults.json", ("ratios_new_over_old/tokens_per_s_ratio_at_1",
                                "new_default/by_concurrency/1/output_tokens_per_s",
                                "old_default/by_concurrency/1/output_tokens_per_s",
                                "ratios_new_over_old/tokens_per_s_ratio_at_16",
                                "new_default/by_concurrency/16/output_tokens_per_s",
                                "old_default/by_concurrency/16/output_tokens_per_s"),
     "x{:.2f} output tokens/s at 1 request ({:.1f} vs {:.1f}), x{:.2f} at 16 ({:.1f} vs {:.1f})"),
    (ENG, "cpu_defaults.json", ("new_default/by_concurrency/16/ttft_p50_s",
                                "old_default/by_concurrency/16/ttft_p50_s"),
     "p50 TTFT at 16 {:.2f} vs {:.2f} s"),
    # structured.json
    (ENG, "structured.json", ("summary/response_format/valid_rate", "summary/compact/valid_rate"),
     lambda *rates: f"{min(rates):.0f}% schema-valid for both constrained sides"),
    (ENG, "structured.json", ("summary/compact/valid_rate", "summary/compact/requests",
                              "targets/constrained_valid_rate_min"),
     lambda rate, n, target: f"({rate * n / 100:.0f} of {n}; target {target:.0f}%)"),
    (ENG, "structured.json", ("summary/unconstrained/parse_rate",
                              "summary/unconstrained/valid_rate",
                              "summary/unconstrained/cut_at_max_tokens",
                              "summary/unconstrained/requests"),
     "asked in words: {:.1f}% parse, {:.0f}% valid, {} of {} cut at max tokens"),
    (ENG, "structured.json", ("ratios_vs_unconstrained/*/per_token_latency_ratio",
                              "summary/unconstrained/latency_per_token_median_ms"),
     "x{:.2f} (`response_format`) and x{:.2f} (compact) of unconstrained, {:.0f} ms/token"),
    (ENG, "structured.json", "ratios_vs_unconstrained/*/latency_ratio",
     "whole request x{:.2f} / x{:.2f}"),
    (ENG, "structured.json", ("summary/response_format/completion_tokens_median",
                              "summary/compact/completion_tokens_median",
                              "summary/unconstrained/completion_tokens_median"),
     "({:.0f} / {:.0f} tokens vs {:.0f})"),
    # mcp_overhead.json
    (ENG, "mcp_overhead.json", "median_ms/*", "median {:.2f} / {:.2f} / {:.1f} / {:.1f} ms"),
    (ENG, "mcp_overhead.json", ("ratio_to_direct/gated", "ratio_to_direct/stdio",
                                "ratio_to_direct/http"),
     "(gate x{:.1f}, stdio x{:.1f}, HTTP x{:.1f})"),
    (ENG, "mcp_overhead.json", ("added_ms/stdio", "added_ms/http", "targets/*"),
     "added {:.1f} / {:.1f} ms (targets <= {:.0f} / <= {:.0f} ms)"),
    # tools.json, tools_setups.json
    (NB3, "tools.json", "quality_wall_s", "`quality_wall_s` = {:.0f} seconds"),
    (NB3, "tools.json", ("quality", "requests_per_mode"),
     lambda modes, n: f"That is {len(modes) * n} requests"),
    (ENG, "tools.json", "requests_per_mode", "over {} requests"),
    (ENG, "tools.json", ("quality/required/valid_call", "quality/required/right_tool",
                         "quality/required/args_match", "quality/auto/valid_call",
                         "quality/auto/right_tool", "quality/auto/args_match"),
     "required {:.1f} / {:.2f} / {:.2f}, auto {:.3f} / {:.0f} / {:.0f}"),
    (ENG, "tools.json", ("loop_latency/median/tools_s", "loop_latency/median/loop_s"),
     lambda tools, loop: f"executor {tools * 1000:.1f} ms of a {loop:.1f} s loop"),
    (NB3, "tools_setups.json", "requests_per_mode", "on the same {} requests as above"),
    # tuning.json
    (ENG, "tuning.json", "at_16/compiled/vs_default", "`benchmarks/results/tuning.json`: x{:.2f}"),
    (ENG, "tuning.json", "at_16/compiled/vs_default", lambda r: f"differed by {r - 1:+.0%} to"),
    (ENG, "tuning.json", "at_16/compiled/vs_default", "vs the default: compiled x{:.2f},"),
    *[(where, "tuning.json", "at_16/tcmalloc/vs_default", "tcmalloc x{:.2f}")
      for where in (ENG, NB5)],
    (ENG, "tuning.json", "at_16/uni-executor/vs_default", "uni-executor x{:.2f}"),
    (ENG, "tuning.json", ("at_16/intel-openmp/vs_default", "at_16/async-scheduling/vs_default",
                          "at_16/omp-passive/vs_default", "at_16/float32/vs_default",
                          "at_16/default-again/vs_default", "noise_at_16"),
     "Intel OpenMP x{:.2f}, async scheduling x{:.2f}, OpenMP passive wait x{:.2f}, float32 "
     "x{:.2f}; the default's second run x{:.2f} (noise {:.0%})"),
    (NB5, "tuning.json", "at_16/float32/vs_default", "measured x{:.2f} of the default"),
    (NB5, "tuning.json", "noise_at_16", lambda noise: f"differed by {noise * 100:.0f} %"),
    (NB5, "tuning.json", "at_16/intel-openmp/vs_default", "Intel OpenMP x{:.2f}"),
    (NB5, "tuning.json", "at_16/uni-executor/vs_default", "alone, x{:.2f}"),
    (NB5, "tuning.json", ("at_16/async-scheduling/vs_default", "at_16/omp-passive/vs_default"),
     "async scheduling (x{:.2f}) and OpenMP's passive wait policy (x{:.2f})"),
    # tuning_rounds.json
    (ENG, "tuning_rounds.json", ("vs_same_round_default/compiled/*",
                                 "default_spread_across_rounds"),
     "`tuning_rounds.json`: x{:.2f} and x{:.2f} against an {:.0%} spread"),
    (ENG, "tuning_rounds.json", "vs_same_round_default/compiled/*",
     lambda *r: f"to {max(r) - 1:+.0%}, within"),
    (ENG, "tuning_rounds.json", "median_vs_default/int8-weights+compiled",
     "x{:.2f} together with int8 weights"),
    (ENG, "tuning_rounds.json", "rounds", "Interleaved, {} rounds"),
    (ENG, "tuning_rounds.json", "vs_same_round_default/*/*",
     "int8 weights (W8A8) x{:.2f} / x{:.2f}, compiled x{:.2f} / x{:.2f}, **int8 weights + "
     "compiled x{:.2f} / x{:.2f}**"),
    (ENG, "tuning_rounds.json", ("output_tokens_per_s_at_16/int8-weights+compiled/0",
                                 "output_tokens_per_s_at_16/default/0",
                                 "output_tokens_per_s_at_16/int8-weights+compiled/1",
                                 "output_tokens_per_s_at_16/default/1",
                                 "default_spread_across_rounds", "target_vs_default_at_16"),
     "({:.1f} vs {:.1f} and {:.1f} vs {:.1f} tok/s; the default moved {:.0%} between rounds): "
     "target x{:.2f} met"),
    (NB5, "tuning_rounds.json", "vs_same_round_default/int8-weights/*",
     "measured x{:.2f} and x{:.2f} of the default in two rounds"),
    (NB5, "tuning_rounds.json", "vs_same_round_default/int8-weights+compiled/*",
     "measured it at x{:.2f} and x{:.2f} of the default at 16 users"),
    # throughput.json
    (NB5, "throughput.json", ("results/default/1/output_tokens_per_s",
                              "results/default/16/output_tokens_per_s"),
     "made {:.1f} output tokens/s with one user and {:.1f} with 16"),
    (NB5, "throughput.json", ("results/default/1/ttft_p50_ms", "results/default/16/ttft_p50_ms"),
     "the median TTFT went from {:,.0f} ms to {:,.0f} ms"),
    (NB5, "throughput.json", "ratios/tuned_vs_default_at_16", "measured x{:.2f} at 16 users"),
    (NB5, "throughput.json", ("ratios/default_vs_llama_at_1", "ratios/default_vs_llama_at_16"),
     "x{:.2f} of llama-server's output tokens/s with one user and x{:.2f} with 16"),
    (ENG, "throughput.json", ("ratios/tuned_vs_default_at_16",
                              "targets/tuned_vs_default_at_16_min"),
     "x{:.2f} of the default's output tokens/s at 16 users (`benchmarks/throughput.py`, both "
     "repeats; target x{:.2f})"),
    (ENG, "throughput.json", ("ratios/tuned_vs_default_at_16",
                              "results/tuned/16/output_tokens_per_s",
                              "results/default/16/output_tokens_per_s",
                              "ratios_per_repeat/tuned_vs_default_at_16/*",
                              "targets/tuned_vs_default_at_16_min", "ratios/tuned_vs_default_at_1"),
     "x{:.2f} at 16 users** ({:.1f} vs {:.1f} tok/s; x{:.2f} and x{:.2f} per repeat; target "
     "x{:.2f} met), x{:.2f} at 1"),
    (ENG, "throughput.json", ("results/tuned/32/output_tokens_per_s",
                              "results/default/32/output_tokens_per_s"),
     lambda tuned, default: f"x{tuned / default:.2f} at 32; p95"),
    (ENG, "throughput.json", ("results/tuned/16/ttft_p95_ms", "results/default/16/ttft_p95_ms"),
     lambda tuned, default: f"p95 TTFT at 16: {tuned / 1000:.1f} s vs {default / 1000:.1f} s"),
    (ENG, "throughput.json", ("ratios/tuned_vs_llama_at_16",
                              "results/tuned/16/output_tokens_per_s",
                              "results/llama-server/16/output_tokens_per_s",
                              "targets/tuned_vs_llama_at_16_min", "ratios/tuned_vs_llama_at_1",
                              "results/tuned/1/output_tokens_per_s",
                              "results/llama-server/1/output_tokens_per_s"),
     "x{:.1f} at 16** ({:.1f} vs {:.1f}; target x{:.1f} met), x{:.2f} at 1 user ({:.1f} vs "
     "{:.1f}:"),
    (ENG, "throughput.json", ("results/tuned/32/output_tokens_per_s",
                              "results/llama-server/32/output_tokens_per_s"),
     lambda tuned, llama: f"x{tuned / llama:.1f} at 32. Default"),
    (ENG, "throughput.json", ("ratios/default_vs_llama_at_1", "ratios/default_vs_llama_at_16"),
     "Default vs llama-server: x{:.2f} at 1, x{:.2f} at 16"),
    (ENG, "throughput.json", "seconds", "local processes, idle machine ({:.0f} s)"),
    # test_run.json
    ("README.md", "test_run.json", ("tests", "tests_s"),
     lambda n, s: f"ran {n:,} tests in {int(s // 60)} min {int(s % 60)} s on this 2-core"),
    ("README.md", "test_run.json", "quick/wall_s",
     lambda s: f"one real server: {s:.0f} s in the same measurement"),
    (ENG, "test_run.json", "quick/wall_s",
     lambda s: f"{s:.0f} s instead of the whole run (`benchmarks/results/test_run.json`)"),
    (ENG, "test_run.json", ("date", "commit", "setup_s", "tests", "tests_s",
                            "minutes_by_part/*", "quick/wall_s"),
     lambda date, commit, setup, n, s, integration, notebooks, browser, unit, quick:
     f"{date}, at commit {commit[:7]}: setup {setup / 60:.1f} min, then {n} tests (all six "
     f"modules, the instructor notebook, the room, an attendee's joined lab, the Kubernetes "
     f"export under `podman kube play`) in {int(s // 60)} min {int(s % 60)} s, all passed: "
     f"integration {integration} min, notebooks {notebooks} min, browser {browser} min, unit "
     f"{unit} min; the quick tier {quick:.0f} s."),
    (ENG, "test_run.json", ("tests", "tests_s", "setup_s", "minutes_by_part/*",
                            "targets/tests_min", "quick/wall_s"),
     lambda n, s, setup, i, nb, b, u, target, quick:
     f"{n} tests, all passed, in {int(s // 60)} min {int(s % 60)} s after {setup / 60:.1f} min "
     f"of setup (integration {i}, notebooks {nb}, browser {b}, unit {u} min; target <= "
     f"{target:.0f} min); quick tier {quick:.0f} s."),
    ("README.md", "test_run.json", ("other_runtime/counts/passed", "other_runtime/tests_s"),
     lambda n, s: f"{n} tests in {int(s // 60)} min {int(s % 60)} s more"),
    (ENG, "test_run.json", ("other_runtime/counts/passed", "other_runtime/wall_s"),
     lambda n, s: f"`./lab test --other-runtime` then passed {n} tests in {int(s // 60)} min "
                  f"{int(s % 60)} s"),
    # core_path.json
    ("README.md", "core_path.json", "modules/*/reading_min",
     lambda *m: f"reading {sum(m):.0f} minutes"),
    ("README.md", "core_path.json", "modules/*/core_run_s",
     lambda *s: f"cells {sum(s) / 60:.0f} minutes"),
    (ENG, "core_path.json", "modules/*/core_run_s",
     lambda *s: "cells: " + " / ".join(f"{x:.0f}" for x in s) + f" s for modules 1-6 "
                f"({sum(s) / 60:.1f} min;"),
    (ENG, "core_path.json", "modules/*/reading_min", lambda *m: f"reading {sum(m):.1f} min;"),
    (ENG, "core_path.json", "total_agenda_core_min", "agendas {} min in all"),
    ("README.md", "core_path.json", "modules/*/core_run_s",
     lambda *s: "per module " + ", ".join(f"{x:.0f}" for x in s[:-1]) + f" and {s[-1]:.0f} s"),
]


def _values_at(results: str, path: str) -> list:
    """The values at a key path like "results/default/16/output_tokens_per_s"."""
    nodes = [json.loads((RESULTS / results).read_text())]
    for key in path.split("/"):
        try:
            if key == "*":
                nodes = [v for n in nodes for v in (n.values() if isinstance(n, dict) else n)]
            else:
                nodes = [n[int(key)] if isinstance(n, list) else n[key] for n in nodes]
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            pytest.fail(f"{results} has no key path {path!r} (no {key!r})")
    return nodes


def _id(entry) -> str:
    where, results, paths, _ = entry.values if hasattr(entry, "values") else entry
    paths = paths if isinstance(paths, str) else "+".join(paths)
    return f"{where}:{results}:{paths}"


@pytest.mark.parametrize(("where", "results", "paths", "fmt"), QUOTED,
                         ids=[_id(e) for e in QUOTED])
def test_a_quoted_figure_is_its_results_file(where, results, paths, fmt):
    values = [v for p in ([paths] if isinstance(paths, str) else paths)
              for v in _values_at(results, p)]
    quoted = fmt(*values) if callable(fmt) else fmt.format(*values)
    text = " ".join(TEXTS[where].split())
    assert quoted in text, f"{where} does not quote {quoted!r} from {results} ({paths})"


def test_the_test_run_quoted_passed_and_the_readmes_first_setup_is_the_docs():
    run = json.loads((RESULTS / "test_run.json").read_text())
    assert run["exit_code"] == 0 and set(run["counts"]) <= {"passed", "warnings"}
    assert run["quick"]["exit_code"] == 0
    other = run["other_runtime"]
    assert other["exit_code"] == 0 and set(other["counts"]) <= {"passed", "warnings"}
    first = re.search(r"The first run took (\d+ min \d+ s)", " ".join(TEXTS["README.md"].split()))
    assert first and f"took {first.group(1)}" in " ".join(TEXTS[ENG].split())


def test_module_3s_reading_of_the_worked_examples_is_the_results_file():
    """Module 3 says the worked examples (few-shot) did not help SmolLM2: their setups are no
    better than the same setups without them in tools_setups.json."""
    quality = json.loads((RESULTS / "tools_setups.json").read_text())["quality"]
    for with_examples, without in (("few_shot", "narrowed_described"),
                                   ("router_few_shot", "router")):
        for rate in ("right_tool", "args_match"):
            assert quality[with_examples][rate] <= quality[without][rate], (with_examples, rate)
    assert "the worked examples did not help" in TEXTS["03_tool_calling.ipynb"].replace("\n", " ")


def test_the_largest_parts_quoted_are_the_test_runs():
    """docs/ENGINEERING.md names the three slowest files of the quoted run, with their
    seconds, in the results file's order."""
    run = json.loads((RESULTS / "test_run.json").read_text())
    top = list(run["slowest_files_s"].items())[:3]
    quoted = "The largest parts: " + ", ".join(f"{Path(f).name} {s} s" for f, s in top)
    assert quoted in " ".join(TEXTS[ENG].split())
