"""The settings table covers every flag and variable the lab's servers run with."""

from __future__ import annotations

import functools
import shlex

import pytest

from lab_helpers.server.catalog import CATALOG
from lab_helpers.server.config import chat_server, embedding_server
from lab_helpers.server.keyguard import KEY_FILE_ENV
from lab_helpers.server.settings_table import (
    ENV,
    FLAGS,
    UndocumentedSetting,
    command_flags,
    settings_table,
)


def lab_configs():
    configs = [chat_server("cpu"), chat_server("gpu"), embedding_server("cpu"),
               embedding_server("gpu")]
    configs += [chat_server("gpu", model=e.key) for e in CATALOG if not e.bundled]
    return configs


@functools.cache
def vllm_parser():
    """vLLM 0.32's own `vllm serve` / api_server argument parser: the independent reference."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


def test_every_flag_and_variable_of_the_lab_commands_has_a_row():
    parser = vllm_parser()
    options = parser._option_string_actions  # noqa: SLF001 - argparse keeps them only here
    defaults = vars(parser.parse_args([]))
    for cfg in lab_configs():
        args = cfg.vllm_args()
        table = settings_table(cfg, strict=True)
        rows = table[table["setting"].str.startswith("--")]
        # The flag rows come first, one per option on the command line, each an option vLLM
        # knows and actually on that command line.
        assert list(table.index[:len(rows)]) == list(rows.index)
        assert len(rows) == sum(arg.startswith("--") for arg in args), (args, list(rows.setting))
        unknown = [flag for flag in rows["setting"] if flag not in options]
        assert unknown == [], unknown
        assert all(any(a == f or a.startswith(f + "=") for a in args) for f in rows["setting"])
        # What vLLM parses from the command: every setting it takes away from its default has
        # a row, and each row's value, parsed by vLLM on its own, gives what vLLM parsed.
        parsed = vars(parser.parse_args(args))
        dests = {options[flag].dest for flag in rows["setting"]}
        changed = {dest for dest, value in parsed.items() if defaults.get(dest) != value}
        assert changed <= dests, (args, changed - dests)
        for flag, value in zip(rows["setting"], rows["value"], strict=True):
            alone = vars(parser.parse_args([flag, value] if value else [flag]))
            dest = options[flag].dest
            assert alone[dest] == parsed[dest], (flag, value, parsed[dest])
            spilled = {d for d, v in alone.items() if d != dest and defaults.get(d) != v}
            assert spilled == set(), (flag, value, spilled)  # e.g. a value shown for a switch
        assert set(cfg.server_env()) <= set(table["setting"])
        assert KEY_FILE_ENV in set(table["setting"])
        assert "VLLM_API_KEY" not in set(table["setting"])
        assert table["what it does"].str.len().min() > 10


def test_values_come_from_the_config():
    cfg = chat_server("cpu").replace(port=18555, max_model_len=1024)
    table = settings_table(cfg).set_index("setting")
    assert table.loc["--port", "value"] == "18555"
    assert table.loc["--max-model-len", "value"] == "1024"
    assert table.loc["--enforce-eager", "value"] == ""
    assert table.loc["VLLM_CPU_KVCACHE_SPACE", "value"] == str(cfg.kv_cache_gib)


def test_a_new_flag_without_a_description_fails():
    cfg = chat_server("cpu").replace(extra_args=("--max-num-seqs", "8"))
    with pytest.raises(UndocumentedSetting, match="--max-num-seqs"):
        settings_table(cfg, strict=True)
    row = settings_table(cfg).set_index("setting").loc["--max-num-seqs"]
    assert "not described" in row["what it does"] and row["value"] == "8"


def test_described_flags_exist_in_this_vllm():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    known = set(parser._option_string_actions)  # noqa: SLF001 - argparse keeps them only here
    assert set(FLAGS) <= known, set(FLAGS) - known
    assert all(name.isupper() for name in ENV)


def test_command_flags_reads_switches_values_and_inline_values():
    assert command_flags(["--a", "1", "--b", "--c=x", "--d", "y"]) == [
        ("--a", "1"), ("--b", ""), ("--c", "x"), ("--d", "y")]


def test_the_vllm_serve_command_is_the_same_server_to_vllms_parser():
    parser = vllm_parser()
    for cfg in lab_configs():
        words = shlex.split(cfg.vllm_serve_command("/keys/chat.key"))
        start = words.index("vllm")
        env = dict(word.split("=", 1) for word in words[:start])
        assert env == cfg.server_env()
        assert words[start:start + 2] == ["vllm", "serve"]
        model, rest = words[start + 2], words[start + 3:]
        assert rest[-2:] == ["--api-key", "$(cat /keys/chat.key)"]
        served = vars(parser.parse_args(["--model", model, *rest[:-2], "--api-key", "k"]))
        assert served == {**vars(parser.parse_args(cfg.vllm_args())), "api_key": ["k"]}
