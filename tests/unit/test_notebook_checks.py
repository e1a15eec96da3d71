"""The notebooks' "check your work" cells can fail, and nbval would see them fail.

nbval (`./lab test`) runs the notebooks committed without outputs, so it compares no output:
a notebook's checks are its `assert` cells, and a cell tagged `raises-exception` is one whose
error nbval tolerates. What is covered, and where:

- Committed without outputs or execution counts: tests/unit/test_packaging.py
  (test_notebooks_are_committed_without_outputs).
- No check is inert (here, statically, every cell of every notebook): no `# NBVAL_CHECK_OUTPUT`
  marker (it compares nothing without outputs), no skip marker, no `assert` in a cell whose
  error nbval tolerates, and no assert that holds whatever the learner's result is (a
  constant, `x == x`, `... or True`, `len(x) >= 0`, an assert that reads no variable).
- Real check cells fail on a wrong result (here, without a server): each case below runs the
  cell's own source, in the notebook's own imports, once with a right value bound (it passes)
  and once per wrong value (it must raise AssertionError, which nbval reports as a failure).
  The cells are found by a line of their source, so an edited check fails here until the case
  follows it. Checks whose inputs only a live server gives (answers, metrics, MCP transcripts)
  are not run here: they run under nbval only.
- Cells tagged `raises-exception` really raise: nbval 0.11 only tolerates an error there, it
  does not fail a tagged cell that runs cleanly. The ones that need no server run here and
  must raise the lab's error (not a NameError); each of the others is listed in
  SERVER_RAISES with what shows under nbval that it raised, and an unlisted new one fails here.
"""

from __future__ import annotations

import ast
import functools
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pandas as pd
import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REPORT = Path(__file__).resolve().parents[1] / "data" / "guidellm-0.8.1-report.json"


@functools.cache
def _cells(name: str) -> tuple[nbformat.NotebookNode, ...]:
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    return tuple(c for c in nb.cells if c.cell_type == "code")


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def python_source(source: str) -> str:
    """A cell as the kernel runs it: IPython's `!command` lines become plain Python."""
    return TransformerManager().transform_cell(source)


def _asserts(source: str) -> list[ast.Assert]:
    return [n for n in ast.walk(ast.parse(python_source(source))) if isinstance(n, ast.Assert)]


def check_cell(name: str, line: str) -> str:
    """The source of the one code cell of notebook `name` holding `line`."""
    found = [c.source for c in _cells(name) if line in c.source]
    assert len(found) == 1, f"{name}: {len(found)} cells hold {line!r}"
    return found[0]


@functools.cache
def _import_cells(name: str) -> tuple[str, ...]:
    """The notebook's cells made only of imports (what a check cell's names come from)."""
    sources = []
    for cell in _cells(name):
        body = ast.parse(python_source(cell.source)).body
        if body and all(isinstance(n, ast.Import | ast.ImportFrom) for n in body):
            sources.append(cell.source)
    assert sources, f"{name}: no import cell"
    return tuple(sources)


def run_cell(name: str, source: str, **bound: Any) -> dict[str, Any]:
    """Run `source` after the notebook's own imports, with `bound` as the earlier cells' work."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for imports in _import_cells(name):
        exec(compile(imports, f"<{name} imports>", "exec"), namespace)
    namespace.update(bound)
    exec(compile(source, f"<{name} check>", "exec"), namespace)
    return namespace


# -- no check is inert ---------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_inert_output_markers(path):
    nb = nbformat.read(path, as_version=4)
    marked = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert marked == [], f"cells {marked}: stripped outputs make these markers compare nothing"


def _tautology(node: ast.Assert) -> str | None:
    """Why this assert holds whatever the notebook computed (None: it can fail)."""
    test = node.test
    if isinstance(test, ast.Constant):
        return "a constant"
    if not any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) for n in ast.walk(test)):
        return "reads no variable"
    for sub in ast.walk(test):
        if isinstance(sub, ast.BoolOp) and isinstance(sub.op, ast.Or) and any(
                isinstance(v, ast.Constant) and v.value for v in sub.values):
            return "`or` with a true constant"
        if isinstance(sub, ast.Compare):
            sides = [sub.left, *sub.comparators]
            for op, left, right in zip(sub.ops, sides[:-1], sides[1:], strict=True):
                if ast.dump(left) == ast.dump(right) and isinstance(
                        op, ast.Eq | ast.GtE | ast.LtE | ast.Is | ast.In):
                    return "compares a value with itself"
                if (isinstance(op, ast.GtE) and isinstance(left, ast.Call)
                        and isinstance(left.func, ast.Name) and left.func.id == "len"
                        and isinstance(right, ast.Constant) and right.value == 0):
                    return "len(...) >= 0"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_check_can_fail_and_nbval_sees_it(path):
    nb = nbformat.read(path, as_version=4)
    check_cells = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = cell.source
        assert "NBVAL_SKIP" not in source and "nbval-skip" not in _tags(cell), f"cell {i} skipped"
        asserts = _asserts(source)
        check_cells += bool(asserts)
        # nbval tolerates any error of a tagged cell: an assert there would check nothing.
        assert not (asserts and "raises-exception" in _tags(cell)), f"cell {i}: tolerated assert"
        for node in asserts:
            why = _tautology(node)
            assert why is None, f"cell {i}, `{ast.unparse(node)}`: {why}"
    assert check_cells >= 3, f"{path.name}: {check_cells} check cells"


@pytest.mark.parametrize("source", [
    "assert True", "x = 1\nassert x == x", "assert len(rows) >= 0", "assert ok or True",
    "assert 2 > 1",
])
def test_the_tautology_finder_finds_tautologies(source):
    assert [_tautology(n) for n in _asserts(source)] != [None]


# -- real check cells fail on a wrong result -------------------------------------------------


def _stats(**changes):
    from lab_helpers.chat.turns import ReplyStats

    base = dict(ttft_s=0.25, decode_s=1.5, total_s=1.75, prompt_tokens=31, completion_tokens=24,
                chunks=24, finish_reason="stop", total_tokens=55)
    return ReplyStats(**{**base, **changes})


def _catalog_runs(model: str, runs: bool) -> pd.DataFrame:
    from lab_helpers.server.catalog import catalog_table

    table = catalog_table()
    table.loc[table["model"] == model, "runs here"] = runs
    return table


def _catalog_without_reasons() -> pd.DataFrame:
    from lab_helpers.server.catalog import catalog_table

    table = catalog_table()
    table.loc[~table["runs here"], "why"] = ""
    return table


def case_catalog(tmp_path):
    from lab_helpers.server.catalog import catalog_table

    right = {"catalog": catalog_table()}
    return right, {
        "the bundled model does not run": {"catalog": _catalog_runs("smollm2-135m-instruct",
                                                                    False)},
        "a model that cannot run says no why": {"catalog": _catalog_without_reasons()},
    }


def case_reply_stats(tmp_path):
    def chat(answer="Hi! I am ACME's support assistant.", **stats):
        return SimpleNamespace(history=[SimpleNamespace(answer=answer)],
                               last_stats=_stats(**stats))

    return {"chat": chat()}, {
        "an empty answer": {"chat": chat(answer="  \n")},
        "no completion tokens": {"chat": chat(completion_tokens=0, total_tokens=31)},
        "a total that is not prompt + completion": {"chat": chat(total_tokens=54)},
        "no time to first token": {"chat": chat(ttft_s=0.0)},
    }


def case_system_prompt_costs_tokens(tmp_path):
    def table(short, acme):
        return pd.DataFrame({"system prompt": ["You are a helpful assistant...."] * 2
                             + ["You are ACME Corp's support a..."] * 2,
                             "prompt tokens": [short, short, acme, acme]})

    return {"persona_table": table(35, 240)}, {
        "the persona never reached the prompt": {"persona_table": table(35, 35)},
    }


def case_greedy_repeats(tmp_path):
    return ({"answers": {0.0: ["AcmeBot", "AcmeBot"], 1.2: ["Coyote Helper", "Rocketeer"]}},
            {"greedy answers differ": {"answers": {0.0: ["AcmeBot", "Acme Pal"],
                                                   1.2: ["Coyote Helper", "Rocketeer"]}}})


def case_history_grows(tmp_path):
    def growth(*sizes):
        return [{"turn": i + 1, "prompt tokens": n} for i, n in enumerate(sizes)]

    return {"growth": growth(52, 101, 150)}, {
        "the history is not resent": {"growth": growth(52, 52, 52)},
        "a turn lost its history": {"growth": growth(52, 101, 60)},
    }


def case_old_field_ignored(tmp_path):
    from lab_helpers import structured

    nonsense = structured.choice(["zorblax", "quimfo"])

    def bound(old_text, new_text):
        old = SimpleNamespace(choices=[SimpleNamespace(
            message=SimpleNamespace(content=old_text))])
        new = SimpleNamespace(text=new_text, valid=nonsense.check(new_text).valid)
        return {"nonsense": nonsense, "old": old, "new": new}

    return bound("My day was great, thanks!", "quimfo"), {
        "the old field was applied": bound("zorblax", "quimfo"),
        "the new field was ignored": bound("My day was great, thanks!",
                                           "My day was great, thanks!"),
    }


def case_experiment_table(tmp_path):
    from lab_helpers.structured.presets import support_messages

    messages = support_messages()
    n = len(messages)

    def table(requests=n, constrained_valid=100.0, unconstrained_valid=62.5):
        return pd.DataFrame({"requests": [requests, n], "parse_rate": [100.0, 87.5],
                             "schema_valid_rate": [constrained_valid, unconstrained_valid]},
                            index=["constrained", "unconstrained"])

    return {"messages": messages, "table": table()}, {
        "a message was dropped": {"table": table(requests=n - 1)},
        "a constrained answer failed the schema": {"table": table(constrained_valid=95.0)},
    }


def case_desk_seed(tmp_path):
    from lab_helpers.support import SupportDesk

    def desk(name, *statements):
        made = SupportDesk(tmp_path / f"{name}.sqlite")
        with sqlite3.connect(made.path) as conn:
            for statement in statements:
                conn.execute(statement)
        return made

    return {"desk": desk("right")}, {
        "another customer's name": {"desk": desk(
            "renamed", "UPDATE customers SET name = 'Jane Doe' "
                       "WHERE email = 'john.smith@email.com'")},
        "no headphones within the price": {"desk": desk(
            "pricey", "UPDATE products SET price_cents = price_cents + 50000")},
    }


def case_write_tools_are_marked(tmp_path):
    from lab_helpers.support import SupportDesk
    from lab_helpers.tools import ToolRegistry, acme_registry

    desk = SupportDesk(tmp_path / "acme.sqlite")
    return {"registry": acme_registry(desk)}, {
        "create_ticket runs without a decision": {"registry": ToolRegistry.of(
            desk.tool_functions(), writes={"schedule_callback"})},
    }


def case_reset_restores_the_seed(tmp_path):
    from lab_helpers.support import SupportDesk

    def desk_after_a_ticket(name, reset_works=True):
        desk = SupportDesk(tmp_path / f"{name}.sqlite")
        desk.create_ticket("john.smith@email.com", "Broken anvil", "It arrived in pieces.")
        if not reset_works:
            desk.reset = lambda: None
        return desk

    seed_counts = SupportDesk(tmp_path / "seed.sqlite").row_counts()
    return {"desk": desk_after_a_ticket("right"), "seed_counts": seed_counts}, {
        "reset keeps the new ticket": {"desk": desk_after_a_ticket("kept", reset_works=False)},
    }


def case_unapproved_write_refused(tmp_path):
    from lab_helpers.support import SupportDesk
    from lab_helpers.tools.approval import NotApproved

    def desk(name, write=False):
        made = SupportDesk(tmp_path / f"{name}.sqlite")
        if write:
            made.create_ticket("john.smith@email.com", "direct call", "no approval asked")
        return made

    refused = NotApproved("acme__create_ticket needs a decision.", fix="approve it")
    seed = desk("seed").snapshot()
    return {"refused": refused, "desk": desk("right"), "seed": seed}, {
        "the call ran without approval": {"refused": None, "desk": desk("written", True)},
        "refused, but written anyway": {"desk": desk("written-too", True)},
    }


def _guidellm_run(tmp_path, frame=None):
    from lab_helpers import bench

    report = bench.load_report(REPORT)
    paths = {}
    for kind in ("json", "csv", "summary"):
        paths[f"{kind}_path"] = tmp_path / f"run.{kind}"
        paths[f"{kind}_path"].write_text("{}")
    return SimpleNamespace(report=report, frame=bench.report_frame(report) if frame is None
                           else frame, **paths)


def case_benchmark_table(tmp_path):
    right = _guidellm_run(tmp_path)
    p50_as_p95 = right.frame.assign(ttft_p95_ms=right.frame["ttft_p50_ms"])
    errored = right.frame.assign(requests_errored=[0, 1])
    return {"run": right, "STREAMS": [1, 4]}, {
        "a level is missing": {"STREAMS": [1, 4, 8]},
        "a request errored": {"run": _guidellm_run(tmp_path, errored)},
        "p95 TTFT is not GuideLLM's": {"run": _guidellm_run(tmp_path, p50_as_p95)},
        "a file was not written": {"run": SimpleNamespace(
            **{**vars(right), "csv_path": tmp_path / "missing.csv"})},
    }


def case_levels_decoded(tmp_path):
    right = _guidellm_run(tmp_path)
    stalled = right.frame.assign(output_tokens_per_s=[right.frame["output_tokens_per_s"].iloc[0],
                                                      0.0])
    no_first_token = right.frame.assign(ttft_p50_ms=[float("nan"), 12.0])
    return {"run": right, "STREAMS": [1, 4]}, {
        "a level decoded nothing": {"run": _guidellm_run(tmp_path, stalled)},
        "a level saw no first token": {"run": _guidellm_run(tmp_path, no_first_token)},
    }


# (notebook, a line of the check cell, the case)
CHECKS = [
    ("01_deploy_and_chat", 'assert runs_here["smollm2-135m-instruct"]', case_catalog),
    ("01_deploy_and_chat", "assert stats.total_tokens == stats.prompt_tokens", case_reply_stats),
    ("01_deploy_and_chat", "assert acme > short", case_system_prompt_costs_tokens),
    ("01_deploy_and_chat", "assert answers[0.0][0] == answers[0.0][1]", case_greedy_repeats),
    ("01_deploy_and_chat", 'prompt_sizes = [row["prompt tokens"]', case_history_grows),
    ("02_structured_outputs", "assert not nonsense.check(", case_old_field_ignored),
    ("02_structured_outputs", 'assert table.loc["constrained", "parse_rate"] == 100',
     case_experiment_table),
    ("03_tool_calling", "seed_counts = desk.row_counts()", case_desk_seed),
    ("03_tool_calling", 'fn["strict"] is True', case_write_tools_are_marked),
    ("03_tool_calling", "assert desk.row_counts() == seed_counts", case_reset_restores_the_seed),
    ("04_mcp_agents", "assert isinstance(refused, NotApproved)", case_unapproved_write_refused),
    ("05_benchmark", 'assert list(run.frame["load"]) == [float(s) for s in STREAMS]',
     case_benchmark_table),
    ("05_benchmark", 'by_load = run.frame.set_index("load")', case_levels_decoded),
]


@pytest.mark.parametrize(("name", "line", "case"), CHECKS,
                         ids=[f"{n[:2]}-{c.__name__[5:]}" for n, _, c in CHECKS])
def test_a_check_cell_fails_on_a_wrong_result(name, line, case, tmp_path):
    source = check_cell(name, line)
    assert _asserts(source), f"{name}: the cell holding {line!r} asserts nothing"
    right, wrongs = case(tmp_path)
    run_cell(name, source, **right)  # the right result passes
    assert wrongs
    for what, changes in wrongs.items():
        with pytest.raises(AssertionError):
            run_cell(name, source, **{**right, **changes})
            pytest.fail(f"{name}: the check passed with a wrong result: {what}")


# -- cells tagged raises-exception really raise ----------------------------------------------

# Tagged cells that need no server: run here, they must raise the lab's own error.
LOCAL_RAISES = [
    ("01_deploy_and_chat", 'chat_server("cpu", model="Qwen/Qwen2.5-7B-Instruct")',
     "ModelNotFound"),
    ("02_structured_outputs", 'structured.regex("ACME-[A-Z{4}-[0-9]{4}")', "InvalidRegex"),
    ("05_benchmark", "bench.concurrent([4], max_requests=None)", "BenchConfigError"),
]
# Tagged cells that need the module's running server: what shows under nbval that they raised.
SERVER_RAISES = {
    ("01_deploy_and_chat", 'server.start(cfg.replace(name="second-chat"))'):
        "the check after it asserts no 'second-chat' server exists: a start that went "
        "through would have left one",
    ("01_deploy_and_chat", 'conversation.send("One more question'):
        "the next cell asserts len(conversation.history) == 3: a send that went through "
        "would have added a turn",
}


def test_every_tagged_cell_is_accounted_for():
    tagged = {(p.stem, c.source) for p in NOTEBOOKS for c in _cells(p.stem)
              if "raises-exception" in _tags(c)}
    known = [(n, line) for n, line, _ in LOCAL_RAISES] + list(SERVER_RAISES)
    for name, source in tagged:
        matches = [line for n, line in known if n == name and line in source]
        assert len(matches) == 1, f"{name}: tagged cell {source!r} is in no list (or in two)"
    assert len(tagged) == len(known), "a listed cell is no longer tagged"


@pytest.mark.parametrize(("name", "line", "error"), LOCAL_RAISES,
                         ids=[n[:2] for n, _, _ in LOCAL_RAISES])
def test_a_tagged_cell_raises_the_labs_error(name, line, error):
    from lab_helpers.errors import LabError

    cell = next(c for c in _cells(name) if line in c.source)
    assert "raises-exception" in _tags(cell)
    with pytest.raises(LabError) as err:
        run_cell(name, cell.source, PROFILE="cpu")
    assert type(err.value).__name__ == error and err.value.fix

