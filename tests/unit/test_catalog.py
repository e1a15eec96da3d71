"""The model catalog against the installed vLLM: parser names and whole command lines.

vLLM itself is the judge here: its tool-parser and reasoning-parser registries, and the
argument parser its OpenAI server builds (`make_arg_parser`) plus its own pre-start checks
(`validate_parsed_serve_args`). A typo in a parser or a flag this vLLM does not know fails.
"""

from __future__ import annotations

import pytest

from lab_helpers.errors import LabError, ModelNotFound
from lab_helpers.models import BUNDLED
from lab_helpers.server import catalog
from lab_helpers.server.catalog import CATALOG, UnknownModel, availability, catalog_table, find
from lab_helpers.server.config import chat_server


@pytest.fixture(scope="module")
def vllm_parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser(prog="vllm.entrypoints.openai.api_server"))


@pytest.fixture(scope="module")
def tool_parsers() -> set[str]:
    from vllm.tool_parsers import ToolParserManager

    return set(ToolParserManager.list_registered())


@pytest.fixture(scope="module")
def reasoning_parsers() -> set[str]:
    from vllm.reasoning import ReasoningParserManager

    return set(ReasoningParserManager.list_registered())


def configs():
    """Every catalog entry as the config chat_server builds, in both profiles it runs in."""
    out = []
    for entry in CATALOG:
        profiles = ("cpu", "gpu") if entry.bundled else ("gpu",)
        for profile in profiles:
            out.append(pytest.param(profile, entry.key, id=f"{profile}-{entry.key}"))
    return out


def parse(vllm_parser, args: list[str]):
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args

    ns = vllm_parser.parse_args(args)
    validate_parsed_serve_args(ns)
    return ns


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.key)
def test_parsers_exist_in_this_vllm(entry, tool_parsers, reasoning_parsers):
    assert entry.tool_call_parser in tool_parsers
    if entry.reasoning_parser is not None:
        assert entry.reasoning_parser in reasoning_parsers


def test_registry_check_catches_a_typo(tool_parsers):
    # The check above would fail on the classic mistake: the Llama parser is llama3_json.
    assert "llama3_json" in tool_parsers and "llama3" not in tool_parsers


@pytest.mark.parametrize(("profile", "key"), configs())
def test_every_command_line_parses_in_vllm(profile, key, vllm_parser):
    cfg = chat_server(profile, model=key)
    ns = parse(vllm_parser, cfg.vllm_args())
    entry = find(key)
    assert ns.tool_call_parser == entry.tool_call_parser and ns.enable_auto_tool_choice
    assert ns.served_model_name == [entry.served_model_name]
    assert ns.port == cfg.port and ns.host == cfg.host
    if entry.max_model_len:
        assert ns.max_model_len == entry.max_model_len
    assert getattr(ns, "reasoning_parser", None) in (entry.reasoning_parser, "", None)
    if entry.reasoning_parser:
        assert ns.reasoning_parser == entry.reasoning_parser


def test_default_profiles_parse(vllm_parser):
    for profile in ("cpu", "gpu"):
        parse(vllm_parser, chat_server(profile).vllm_args())


def test_an_unknown_flag_fails_the_parse(vllm_parser):
    with pytest.raises(SystemExit):
        parse(vllm_parser, chat_server("gpu").vllm_args() + ["--no-such-vllm-flag", "1"])


def test_chat_server_takes_parser_and_settings_from_the_catalog():
    cfg = chat_server("gpu", model="meta-llama/Llama-3.1-8B-Instruct")
    assert cfg.tool_call_parser == "llama3_json"
    assert cfg.max_model_len == 16384 and cfg.served_model_name == "llama-3.1-8b-instruct"
    assert chat_server("gpu", model="mistralai/Mistral-7B-Instruct-v0.3").tool_call_parser \
        == "mistral"
    assert chat_server("gpu", model="ibm-granite/granite-3.3-8b-instruct").tool_call_parser \
        == "granite"
    qwen3 = chat_server("gpu", model="Qwen/Qwen3-8B")
    assert qwen3.vllm_args()[-2:] == ["--reasoning-parser", "qwen3"]
    # The default gpu profile is the catalog's Qwen2.5-3B with its settings.
    assert chat_server("gpu").max_model_len == find("Qwen/Qwen2.5-3B-Instruct").max_model_len


def test_overrides_win_over_the_catalog():
    cfg = chat_server("gpu", model="Qwen/Qwen2.5-7B-Instruct", max_model_len=4096)
    assert cfg.max_model_len == 4096 and cfg.tool_call_parser == "hermes"


def test_bundled_model_keeps_the_lab_template():
    entry = find("smollm2-135m-instruct")
    assert entry.bundled and entry.tool_call_parser == "hermes"
    assert BUNDLED[entry.key].chat_template is not None
    assert BUNDLED[entry.key].chat_template in entry.template
    assert chat_server("cpu", model=entry.key) == chat_server("cpu")


def test_unknown_model_lists_the_catalog_and_the_override():
    with pytest.raises(UnknownModel) as err:
        chat_server("gpu", model="acme/support-llm-7b")
    assert isinstance(err.value, LabError)
    for entry in CATALOG:
        assert entry.key in err.value.what
    assert "tool_call_parser=" in err.value.fix
    cfg = chat_server("gpu", model="acme/support-llm-7b", tool_call_parser="pythonic")
    assert cfg.tool_call_parser == "pythonic" and cfg.model == "acme/support-llm-7b"


def test_hub_id_on_the_offline_cpu_profile_fails_at_once():
    for model in ("Qwen/Qwen2.5-3B-Instruct", "acme/not-in-catalog"):
        with pytest.raises(ModelNotFound) as err:
            chat_server("cpu", model=model, tool_call_parser="hermes")
        assert "offline" in err.value.what and "chat_server('cpu')" in err.value.fix


def test_local_directory_needs_a_parser(tiny_model_dir):
    with pytest.raises(UnknownModel):
        chat_server("cpu", model=str(tiny_model_dir))
    cfg = chat_server("cpu", model=str(tiny_model_dir), tool_call_parser="hermes")
    assert cfg.model == str(tiny_model_dir) and cfg.model_name == tiny_model_dir.name


def test_availability_says_why(monkeypatch):
    no_gpu, l4 = (False, "no NVIDIA driver"), (True, "L4, 24 GiB")
    gated, open_model = find("meta-llama/Llama-3.1-8B-Instruct"), find("Qwen/Qwen2.5-7B-Instruct")
    assert gated.gated and not open_model.gated
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert availability(find("smollm2-135m-instruct"), gpu=no_gpu)[0]
    ok, why = availability(gated, gpu=no_gpu)
    assert not ok and "GPU" in why and "no NVIDIA driver" in why
    # A GPU but no token: only the token is missing, and the reason says so.
    ok, why = availability(gated, gpu=l4)
    assert not ok and "HF_TOKEN" in why and "GPU" not in why
    ok, why = availability(open_model, gpu=l4)
    assert ok and "L4, 24 GiB" in why
    # With a token, the gated model runs on that GPU.
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    ok, why = availability(gated, gpu=l4)
    assert ok and "L4, 24 GiB" in why and "HF_TOKEN" not in why
    assert not availability(gated, gpu=no_gpu)[0]


def test_gpu_memory_holds_the_bf16_weights():
    for entry in CATALOG:
        if not entry.bundled:
            assert entry.min_gpu_gib > 2 * entry.params_b * 1e9 / 1024**3, entry.key


def test_table_has_a_row_per_model():
    table = catalog_table()
    assert list(table["model"]) == [e.key for e in CATALOG]
    assert set(table.columns) >= {"tool parser", "runs here", "why", "reasoning parser"}
    assert catalog.find("SMOLLM2-135M-INSTRUCT") is CATALOG[0]


# -- the CPU default (issue 7, part 9) ---------------------------------------------------------


@pytest.mark.parametrize(("cores", "reserved"), [(1, "0"), (2, "0"), (4, "0"), (8, None),
                                                 (64, None)])
def test_cpu_reserves_no_core_on_small_machines(monkeypatch, cores, reserved):
    from lab_helpers.server import config as config_module

    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    env = chat_server("cpu").server_env()
    assert env.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == reserved
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in chat_server("gpu").server_env()


def test_cpu_default_is_overridable_and_part_of_the_config_hash(monkeypatch):
    from lab_helpers.server import config as config_module

    cfg = chat_server("cpu")
    old = cfg.replace(env={"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"})
    assert old.server_env()["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda _pid: {0, 1})
    small = cfg.config_hash()
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert cfg.config_hash() != small  # a new default restarts the server that lacks it


def test_eager_cpu_servers_do_not_compile_sampler_helpers():
    # The CPU image has no C++ compiler: torch.compile of vLLM's logprob helper killed the
    # engine on the first logprobs request (tests/integration/test_chat.py checks it live).
    assert chat_server("cpu").server_env()["TORCHDYNAMO_DISABLE"] == "1"
    assert "TORCHDYNAMO_DISABLE" not in chat_server("cpu", enforce_eager=False).server_env()


def test_compiled_cpu_servers_save_a_compile_cache_they_can_load():
    # vLLM 0.32's default AOT artifact does not load back on CPU with torch 2.13 (every start
    # compiled again); its older compile cache does (a second start: 52 s instead of 131 s).
    assert chat_server("cpu", enforce_eager=False).server_env()["VLLM_USE_AOT_COMPILE"] == "0"
    assert "VLLM_USE_AOT_COMPILE" not in chat_server("cpu").server_env()


def test_the_notebook_view_shows_every_reason_in_full_and_wrapped():
    """Issue 19: pandas cut the "why" column at 50 characters ("needs an NVIDIA GPU wi…")."""
    import html as html_text

    table = catalog_table()
    shown = table._repr_html_()  # what Jupyter displays for the notebook's `catalog` cell
    assert max(len(why) for why in table["why"]) > 50  # long enough to have been cut
    for why in table["why"]:
        assert html_text.escape(why) in shown, why
    assert "…" not in shown and "white-space:normal" in shown
    assert table.set_index("model")["runs here"]["smollm2-135m-instruct"]  # still a DataFrame
