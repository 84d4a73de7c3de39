"""Loading and swapping the weights behind the `local` backend: a checkpoint directory, a LoRA adapter, or a pair.

What it is for: `load_from_path(path)` reads a `save_pretrained` directory (or a LoRA adapter directory whose base
is a local directory) with `local_files_only=True`; `swap_weights(model, tokenizer, source)` returns the
(model, tokenizer) to use after a round: an already-loaded pair handed over by the trainer, a new full checkpoint,
or a new LoRA adapter put on the current base model (the previous round's adapter is dropped).
What it does not do: download (a path that does not exist is a `FileNotFoundError` that says so), train, or
decide when to reload (the caller does, between rounds).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_NUMBERS = itertools.count(1)
MODEL_CONFIG = "config.json"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


def check_local_dir(path: str | os.PathLike) -> Path:
    where = Path(path)
    if not where.is_dir():
        raise FileNotFoundError(f"{path}: no such directory. The local backend only loads local checkpoints "
                                f"(never from a hub): pass a directory written by save_pretrained")
    if not (where / MODEL_CONFIG).is_file() and not (where / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"{path}: neither {MODEL_CONFIG} (a checkpoint) nor {ADAPTER_CONFIG} "
                                f"(a LoRA adapter) is here")
    return where


def load_from_path(path: str | os.PathLike, *, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint directory, or from an adapter directory over its local base."""
    where = check_local_dir(path)
    if is_adapter_dir(where) and not (where / MODEL_CONFIG).is_file():
        base_path = _adapter_base(where)
        model, tokenizer = load_from_path(base_path, device=device, dtype=dtype)
        tokenizer = _tokenizer_if_present(where) or tokenizer
        return put_adapter(model, where), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(str(where), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    return model.to(device or default_device()).eval(), tokenizer


def swap_weights(model: Any, tokenizer: Any, source: Any) -> tuple[Any, Any]:
    """What to serve after a reload from `source`: a (model, tokenizer) pair, a checkpoint dir or an adapter dir."""
    if isinstance(source, tuple):
        new_model, new_tokenizer = source
        return new_model.eval(), new_tokenizer
    where = check_local_dir(source)
    if is_adapter_dir(where):
        return put_adapter(model, where), _tokenizer_if_present(where) or tokenizer
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    new_model, new_tokenizer = load_from_path(where, device=str(device), dtype=dtype)
    return new_model, new_tokenizer


def put_adapter(model: Any, adapter_dir: Path) -> Any:
    """Serve `adapter_dir` on `model`'s base: load it as a new named adapter, activate it, drop the old one."""
    from peft import PeftModel

    name = f"adapter-{next(_ADAPTER_NUMBERS)}"  # a fresh name, so the same directory re-read is a new adapter
    if not isinstance(model, PeftModel):
        return PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name).eval()
    previous = list(model.peft_config)
    model.load_adapter(str(adapter_dir), adapter_name=name)
    model.set_adapter(name)
    for old in previous:
        model.delete_adapter(old)
    return model.eval()


def _adapter_base(adapter_dir: Path) -> str:
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base or not os.path.isdir(base):
        raise FileNotFoundError(f"{adapter_dir}: its base model {base!r} is not a local directory; load the base "
                                f"checkpoint first and pass the adapter to reload()")
    return base


def _tokenizer_if_present(where: Path) -> Any:
    if not any((where / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(where), local_files_only=True)
