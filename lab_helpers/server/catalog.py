"""The models the lab knows how to serve, with the vLLM settings each one needs.

    from lab_helpers.catalog import CATALOG, catalog_table, availability
    catalog_table()                                   # a pandas table, one row per model
    chat_server("gpu", model="meta-llama/Llama-3.1-8B-Instruct")   # settings from the table

Tool calling only works when the server parses the model's own tool-call format: Llama 3.x
writes JSON (`llama3_json`), Mistral its `[TOOL_CALLS]` list (`mistral`), Qwen 2.5/3 and the
bundled SmolLM2 (with the lab's template) Hermes `<tool_call>` tags (`hermes`), Granite its
`<|tool_call|>` (`granite`). A wrong parser starts fine and then returns tool calls as plain
text, so the lab keeps the pairing in one table; the unit tests check every parser name against
the installed vLLM's registry and every command line against vLLM's own argument parser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import LabError, ModelNotFound
from ..models import bundled_model
from .catalog_view import catalog_frame
from .gpu import gpu_status

if TYPE_CHECKING:
    import pandas as pd

    from .config import Device, ServerConfig

Needs = Literal["cpu", "gpu"]


class UnknownModel(LabError, ValueError):
    """A model the catalog does not know, with no tool-call parser given by hand."""


@dataclass(frozen=True)
class CatalogModel:
    """One model and what serving it takes."""

    key: str
    """What you pass as `model=`: a Hugging Face id, or the bundled model's key."""
    family: str
    params_b: float
    """Parameters, in billions."""
    needs: Needs
    """"cpu": bundled with the lab, runs here. "gpu": an NVIDIA GPU and the hub."""
    tool_call_parser: str
    """vLLM's --tool-call-parser for this model's tool-call format."""
    template: str
    """Which chat template renders tools (for people; `chat_template` is the file, if any)."""
    max_model_len: int | None
    """A sensible --max-model-len; None: the model's own (read from its config)."""
    served_model_name: str
    min_gpu_gib: float | None = None
    """GPU memory for bf16 weights plus a KV cache of max_model_len at 85% utilisation."""
    gated: bool = False
    """Hugging Face asks you to accept a licence: the server needs HF_TOKEN."""
    reasoning_parser: str | None = None
    """vLLM's --reasoning-parser, for models that think before answering."""
    chat_template: str | None = None
    """A --chat-template file; None uses the tokenizer's own (which renders tools already)."""
    extra_args: tuple[str, ...] = ()

    @property
    def bundled(self) -> bool:
        return self.needs == "cpu"

    def vllm_extra_args(self) -> tuple[str, ...]:
        args = tuple(self.extra_args)
        if self.reasoning_parser:
            args += ("--reasoning-parser", self.reasoning_parser)
        return args


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        key="smollm2-135m-instruct", family="SmolLM2", params_b=0.135, needs="cpu",
        tool_call_parser="hermes",
        template="lab's Hermes template (lab_helpers/data/templates/smollm2_hermes.jinja, "
        "installed into the prepared model)",
        max_model_len=None, served_model_name="smollm2-135m-instruct",
    ),
    CatalogModel(
        key="Qwen/Qwen2.5-3B-Instruct", family="Qwen 2.5", params_b=3.1, needs="gpu",
        tool_call_parser="hermes", template="model's own (Hermes <tool_call> tags)",
        max_model_len=16384, served_model_name="qwen2.5-3b-instruct", min_gpu_gib=12,
    ),
    CatalogModel(
        key="Qwen/Qwen2.5-7B-Instruct", family="Qwen 2.5", params_b=7.6, needs="gpu",
        tool_call_parser="hermes", template="model's own (Hermes <tool_call> tags)",
        max_model_len=16384, served_model_name="qwen2.5-7b-instruct", min_gpu_gib=24,
    ),
    CatalogModel(
        key="Qwen/Qwen3-8B", family="Qwen 3", params_b=8.2, needs="gpu",
        tool_call_parser="hermes", template="model's own (Hermes tags, <think> reasoning)",
        max_model_len=16384, served_model_name="qwen3-8b", min_gpu_gib=24,
        reasoning_parser="qwen3",
    ),
    CatalogModel(
        key="meta-llama/Llama-3.2-3B-Instruct", family="Llama 3.2", params_b=3.2, needs="gpu",
        tool_call_parser="llama3_json", template="model's own (JSON tool calls)",
        max_model_len=16384, served_model_name="llama-3.2-3b-instruct", min_gpu_gib=12,
        gated=True,
    ),
    CatalogModel(
        key="meta-llama/Llama-3.1-8B-Instruct", family="Llama 3.1", params_b=8.0, needs="gpu",
        tool_call_parser="llama3_json", template="model's own (JSON tool calls)",
        max_model_len=16384, served_model_name="llama-3.1-8b-instruct", min_gpu_gib=24,
        gated=True,
    ),
    CatalogModel(
        key="mistralai/Mistral-7B-Instruct-v0.3", family="Mistral", params_b=7.2, needs="gpu",
        tool_call_parser="mistral",
        template="mistral_common's (tokenizer mode mistral: [TOOL_CALLS] with 9-char ids)",
        max_model_len=16384, served_model_name="mistral-7b-instruct-v0.3", min_gpu_gib=24,
        gated=True, extra_args=("--tokenizer-mode", "mistral"),
    ),
    CatalogModel(
        key="ibm-granite/granite-3.3-8b-instruct", family="Granite 3.3", params_b=8.2,
        needs="gpu", tool_call_parser="granite",
        template="model's own (<|tool_call|> JSON list)", max_model_len=16384,
        served_model_name="granite-3.3-8b-instruct", min_gpu_gib=24,
        reasoning_parser="granite",
    ),
)


def find(model: str) -> CatalogModel | None:
    """The catalog entry for a key, Hugging Face id or served name (case-insensitive)."""
    wanted = model.strip().lower()
    for entry in CATALOG:
        if wanted in (entry.key.lower(), entry.served_model_name.lower()):
            return entry
    return None


def _catalog_listing() -> str:
    return ", ".join(entry.key for entry in CATALOG)


def availability(entry: CatalogModel, *, gpu: tuple[bool, str] | None = None) -> tuple[bool, str]:
    """(can this machine serve it, why). `gpu` is a gpu_status() result, read once per call."""
    if entry.bundled:
        return True, "bundled: runs on the CPU here"
    if gpu is None:
        gpu = gpu_status()
    has_gpu, gpu_reason = gpu
    reasons = []
    if not has_gpu:
        reasons.append(f"needs an NVIDIA GPU with ~{entry.min_gpu_gib:g} GiB ({gpu_reason})")
    if entry.gated and not os.environ.get("HF_TOKEN"):
        reasons.append("gated on Hugging Face: set HF_TOKEN after accepting its licence")
    if reasons:
        return False, "; ".join(reasons)
    return True, f"GPU: {gpu_reason}; downloads from the Hugging Face hub"


def catalog_table() -> pd.DataFrame:
    """The catalog as a table, with whether this machine can serve each model and why (shown
    in a notebook with every reason in full, wrapped: `catalog_view`)."""
    gpu = gpu_status()
    rows = []
    for entry in CATALOG:
        ok, why = availability(entry, gpu=gpu)
        rows.append({
            "model": entry.key, "family": entry.family, "params (B)": entry.params_b,
            "needs": ("CPU, bundled" if entry.bundled else f"GPU ≥{entry.min_gpu_gib:g} GiB")
            + (", HF_TOKEN (gated)" if entry.gated else ""),
            "tool parser": entry.tool_call_parser, "template": entry.template,
            "reasoning parser": entry.reasoning_parser or "",
            "max model len": entry.max_model_len or "model's own",
            "runs here": ok, "why": why,
        })
    return catalog_frame(rows)


# -- the hook in config.chat_server --------------------------------------------------------------


def chat_config(profile: Device, base: ServerConfig, model: str,
                overrides: dict[str, Any]) -> ServerConfig:
    """The profile's chat config for `model`, with the catalog's settings, then `overrides`.

    A model outside the catalog needs its tool-call parser by hand (`tool_call_parser=`, and
    `chat_template=` if its own template cannot render tools), or `enable_tools=False`.
    The cpu profile is offline: a hub id fails here, before anything starts.
    """
    from pathlib import Path

    entry = find(model)
    local = model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().is_dir()
    if entry is not None and entry.bundled:
        path, context = bundled_model(entry.key)
        fields: dict[str, Any] = {
            "model": path, "served_model_name": entry.served_model_name,
            "max_model_len": entry.max_model_len or context,
            "enable_tools": True, "tool_call_parser": entry.tool_call_parser,
            "chat_template": entry.chat_template, "extra_args": entry.vllm_extra_args(),
        }
        return base.replace(**{**fields, **overrides})
    if profile == "cpu" and not local:
        why = (f"it is a GPU model ({entry.params_b:g}B parameters) of the catalog"
               if entry else "it is not in the catalog either")
        raise ModelNotFound(
            f"{model!r} is a Hugging Face hub id, and the cpu profile serves only local models: "
            f"it runs offline (HF_HUB_OFFLINE=1) and this machine cannot reach the hub; {why}.",
            cause="a hub id needs internet (and, for the catalog's larger models, a GPU)",
            fix="use the bundled model: chat_server('cpu'); a model directory you have: "
            "chat_server('cpu', model='/path/to/model', tool_call_parser='hermes'); or "
            "chat_server('gpu', model=...) on a host with a GPU and internet",
        )
    if entry is not None:
        fields = {
            "model": entry.key, "served_model_name": entry.served_model_name,
            "max_model_len": entry.max_model_len, "enable_tools": True,
            "tool_call_parser": entry.tool_call_parser, "chat_template": entry.chat_template,
            "extra_args": entry.vllm_extra_args(),
        }
        return base.replace(**{**fields, **overrides})
    if "tool_call_parser" not in overrides and overrides.get("enable_tools", True):
        raise UnknownModel(
            f"{model!r} is not in the lab's model catalog, so the lab does not know its "
            f"tool-call format. Catalog: {_catalog_listing()}.",
            cause="each model family writes tool calls differently; the server must be told "
            "which parser reads them",
            fix=f"chat_server({profile!r}, model={model!r}, tool_call_parser='hermes') with "
            "the parser for its family (and chat_template= if needed), or enable_tools=False; "
            "see lab_helpers.catalog.catalog_table()",
        )
    fields = {"model": model, "served_model_name": None, "max_model_len": None,
              "chat_template": None, "extra_args": ()}
    if not overrides.get("enable_tools", True):
        fields["tool_call_parser"] = None
    return base.replace(**{**fields, **overrides})
