"""The settings table covers every flag and variable the lab's servers run with.

The expected values come from the configs' fields, the command's own words and hand-written
vLLM 0.32 facts, never from the code under test reading the command again.
"""

from __future__ import annotations

import shlex

import pytest

from lab_helpers.errors import ConfigError
from lab_helpers.server.catalog import CATALOG
from lab_helpers.server.config import chat_server, embedding_server
from lab_helpers.server.keyguard import KEY_FILE_ENV
from lab_helpers.server.settings_table import (
    ENV,
    FLAGS,
    UndocumentedSetting,
    command_flags,
    settings_table,
    vllm_serve_parser,
)


def lab_configs():
    configs = [chat_server("cpu"), chat_server("gpu"), embedding_server("cpu"),
               embedding_server("gpu")]
    configs += [chat_server("gpu", model=e.key) for e in CATALOG if not e.bundled]
    return configs


def written_flags(args: list[str]) -> list[tuple[str, str]]:
    """The reference: each --option of a lab command and the word after it, if not an option
    (the lab's commands never use `=`, prefixes or values that start with a dash)."""
    return [(word, args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else "")
            for i, word in enumerate(args) if word.startswith("--")]


def test_every_flag_and_variable_of_the_lab_commands_has_a_row():
    for cfg in lab_configs():
        args = cfg.vllm_args()
        table = settings_table(cfg, strict=True)
        flags = table[table["setting"].str.startswith("--")]
        # The flag rows come first, one per option, in the command's order, with its value.
        assert list(table.index[:len(flags)]) == list(flags.index)
        assert list(zip(flags["setting"], flags["value"], strict=True)) == written_flags(args)
        env = table.iloc[len(flags):]
        assert list(env["setting"]) == [*cfg.server_env(), KEY_FILE_ENV]
        assert list(env["value"][:-1]) == list(cfg.server_env().values())
        assert "VLLM_API_KEY" not in set(table["setting"])
        assert table["what it does"].str.len().min() > 10
        assert not table["what it does"].str.startswith("vLLM:").any()


def test_values_and_defaults_come_from_the_config_and_vllm():
    cfg = chat_server("cpu").replace(port=18555, max_model_len=1024)
    table = settings_table(cfg).set_index("setting")
    expected = {"--model": cfg.model, "--served-model-name": cfg.model_name,
                "--host": cfg.host, "--port": "18555", "--dtype": cfg.dtype,
                "--max-model-len": "1024", "--tool-call-parser": str(cfg.tool_call_parser),
                "--enforce-eager": "", "VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gib)}
    assert {name: table.loc[name, "value"] for name in expected} == expected
    # vLLM 0.32's own defaults, shown beside the lab's values.
    defaults = {"--port": "8000", "--dtype": "auto", "--enforce-eager": "False",
                "--max-model-len": "", "VLLM_CPU_KVCACHE_SPACE": ""}
    assert {name: table.loc[name, "vLLM default"] for name in defaults} == defaults


def test_values_are_what_vllms_parser_reads():
    args = ["--model", "m", "--max-model-len", "2k", "--max_num_seqs=8", "-tp", "2",
            "--served-model-name", "a", "b", "--enforce-eager", "--no-enable-prefix-caching",
            "--hf-overrides", '{"x": 1}', "--max-num-batched", "512"]
    assert command_flags(args) == [
        ("--model", "m"), ("--max-model-len", "2000"), ("--max-num-seqs", "8"),
        ("--tensor-parallel-size", "2"), ("--served-model-name", "a b"),
        ("--enforce-eager", ""), ("--no-enable-prefix-caching", ""),
        ("--hf-overrides", '{"x": 1}'),
        ("--max-num-batched-tokens", "512"),  # an abbreviation: found by its changed value
    ]
    # where `vllm serve` exits on an option it does not know
    with pytest.raises(ConfigError, match="unrecognized arguments: --no-such-option"):
        command_flags(["--no-such-option", "1"])


def test_a_new_flag_without_a_description_fails():
    cfg = chat_server("cpu").replace(extra_args=("--max-num-seqs", "8"))
    with pytest.raises(UndocumentedSetting, match="--max-num-seqs"):
        settings_table(cfg, strict=True)
    row = settings_table(cfg).set_index("setting").loc["--max-num-seqs"]
    # vLLM's own help text stands in for the lab's.
    assert row["what it does"].startswith("vLLM: Maximum number of sequences")
    assert (row["value"], row["lab field"]) == ("8", "extra_args")


def test_described_flags_exist_in_this_vllm():
    known = set(vllm_serve_parser()._option_string_actions)  # noqa: SLF001 - argparse only
    assert set(FLAGS) <= known, set(FLAGS) - known
    assert all(name.isupper() for name in ENV)


def test_the_vllm_serve_command_is_the_same_server_to_vllms_parser():
    parser = vllm_serve_parser()
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
