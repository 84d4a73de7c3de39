"""What every job's config shares: the sections, the TOML loader, flag overrides, and one-message errors.

What it is for: the sections more than one job reads ([model], sampling with adaptive K, [budget],
[executor], [judge], [prm]) and the loader pieces (`read_toml`, `apply_overrides`, `validate`,
`Problems` for cross-field checks, `locate` / `key_line` / `suggest` for messages naming file:line and
the near-miss key, `write_resolved` for config.json), and `prm_dir_problem` (is a [prm] path a PRM
directory). Unknown keys are errors (a typo never silently
does nothing); every error of a config is reported in one message.
What it does not do: hold a job's own config, pinned keys or checks (`generate`, `run`, `prm_label`
beside it), compare with a run directory (`resume`), or run anything.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from selfplay.core.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    name: str
    backend: Literal["openai", "local", "vllm"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    supports_n: bool = True
    max_n: int | None = Field(default=None, ge=1)  # openai: most choices per request (None: the provider's known cap)
    stream: bool = False             # openai: send `stream: true` (for servers that only stream)
    batch: bool = False              # openai: send requests through the Batch API (batch price; generate only)
    batch_poll_s: float = Field(default=5.0, gt=0)       # batch mode: seconds between polls of a batch
    batch_max_requests: int = Field(default=50_000, ge=1)  # batch mode: requests per batch (provider limit)
    path: str | None = None          # local / vllm: a checkpoint directory (else `name` is a tiny config / path)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    hourly_usd: float | None = Field(default=None, ge=0)   # local / vllm: the hardware's price per hour
    device: str | None = None        # local: "cpu", "cuda", ...
    dtype: str | None = None         # local: "float32", "bfloat16", ...
    enable_lora: bool = False        # vllm: serve LoRA adapters per round
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # vllm: extra `vllm.LLM(...)` arguments


class SamplingSection(Section):
    """What generate and the loop share: how K candidates per task are sampled and checked."""

    k: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int = 0
    concurrency: int = Field(default=64, ge=1)
    system_prompt: str | None = None
    workflow: str = "direct"
    workflow_options: dict[str, Any] = Field(default_factory=dict)
    verify_concurrency: int = Field(default=4, ge=1)


class AdaptiveSamplingSection(SamplingSection):
    """Sampling with adaptive K (agents.workflows.adaptive; the one sampler: selfplay.pipeline.sample), declared
    once for generate and the loop. Unset `k_max` and `stop_after_verified`: a fixed K per task."""

    k_max: int | None = Field(default=None, ge=1)                 # draw more batches up to k_max (needs a verifier)
    stop_after_verified: int | None = Field(default=None, ge=1)   # stop a task once this many passed
    batch: int | None = Field(default=None, ge=1)                 # samples per further batch (None: k)
    # None means 0.5 (agents.workflows.adaptive's default; selfplay.pipeline.sample.adaptive_settings). Generate
    # declared 0.5 and the loop None: both ran with 0.5. None is kept so that the loop's runs written before this
    # key existed (it is pinned there) still resume; generate's config.json now records null where it said 0.5.
    low_pass_rate: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _k_max_not_below_k(self) -> "AdaptiveSamplingSection":
        if self.k_max is not None and self.k_max < self.k:
            raise ValueError(f"k_max ({self.k_max}) must be at least k ({self.k})")
        return self


class JudgeSection(ModelSection):
    """`verifier = "judge"`: an AI-feedback judge model (priced and budgeted like the policy) and its criteria."""

    rubric: str | None = None
    principles: list[str] = Field(default_factory=list)
    pass_threshold: int = Field(default=7, ge=1, le=10)


class PRMSection(Section):
    """`verifier = "prm"`: a process reward model directory written by `selfplay train prm`."""

    path: str
    aggregation: Literal["min", "product", "last", "mean"] | None = None
    pass_threshold: float = Field(default=0.5, ge=0, le=1)
    step_separator: str | None = None


def prm_dir_problem(path: str) -> str | None:
    """Why `path` is not a PRM directory of `selfplay train prm` (None when it is one): what a [prm] path is checked
    against before a job starts."""
    from verifiers.prm.model import CONFIG_FILE, PRM_FORMAT

    meta = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        return f"{path} is not a directory"
    if not meta.is_file():
        return f"{path} has no {CONFIG_FILE}, so it is not a PRM"
    try:
        found = json.loads(meta.read_text()).get("format")
    except (OSError, ValueError) as exc:
        return f"{meta} is unreadable ({exc})"
    if found != PRM_FORMAT:
        return f"{path} is a PRM of format {found!r}; this version reads {PRM_FORMAT!r} (train it again)"
    return None


class BudgetSection(Section):
    usd: float | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    minutes: float | None = Field(default=None, ge=0)


class ExecutorSection(Section):
    """Where requests and checks run: in this process (`local`) or fanned out over a Ray cluster (`ray`)."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None           # ray.init(address=...): None starts a local Ray, "auto" joins one
    workers: int = Field(default=2, ge=1)                 # Ray actors that hold the HTTP clients
    endpoints: list[str] = Field(default_factory=list)    # more replicas of [model] base_url, balanced by load
    worker_num_cpus: float = Field(default=0.25, ge=0)    # CPUs a worker actor reserves
    verify_num_cpus: float = Field(default=1.0, gt=0)     # CPUs one verification (or tool) Ray task reserves
    max_worker_losses: int = Field(default=3, ge=0)       # re-sends of one request whose worker died


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (value parsed as a TOML value, else taken as a string)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set generate.k=4")
        dotted, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        *parents, leaf = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {part} is not a table")
        node[leaf] = value
    return data


def validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """`model` from `data`; a UserError naming the file, line (where the TOML gives one), key and fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        text = _text_of(source)
        errors = exc.errors()
        problems = [_problem(model, e, source, text) for e in errors[:5]]
        if len(errors) > 5:
            problems.append(f"... and {len(errors) - 5} more")
        raise UserError(_one_message(problems)) from exc


class Problems:
    """The cross-field problems of one config, collected so that they are all reported in ONE message.

    `add(["generate", "workflow"], "...")` records `file:line: [generate] workflow: ...` (the line where the TOML
    spells the key out; no file without a `source`, e.g. a config built in code); `raise_if_any()` raises them
    together as one UserError, in the same form `validate` reports field errors.
    """

    def __init__(self, source: str | None = None) -> None:
        self.source = source
        self.text = _text_of(source) if source else None
        self.items: list[str] = []

    def add(self, loc: list[str], message: str) -> None:
        key = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else f"[{loc[0]}]"
        self.items.append(f"{locate(self.source, self.text, loc)}: {key}: {message}" if self.source
                          else f"{key}: {message}")

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise UserError(_one_message(self.items))


def _one_message(problems: list[str]) -> str:
    return problems[0] if len(problems) == 1 else "invalid config:\n  " + "\n  ".join(problems)


def _problem(model: type[BaseModel], error: dict[str, Any], source: str, text: str | None) -> str:
    loc = [str(p) for p in error["loc"]]
    where = locate(source, text, loc)
    key = ".".join(loc) or "(top)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key {key}{suggest(loc[-1], fields_at(model, loc[:-1]))}"
    if error["type"] == "missing":
        return f"{where}: missing key {key} (required)"
    return f"{where}: {key}: {error['msg']}"


def suggest(name: str, known: list[str]) -> str:
    """'; did you mean X?' for a near-miss of one of `known`, plus the known keys."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{hint} (known keys: {', '.join(sorted(known))})" if known else hint


def fields_at(model: Any, loc: list[str]) -> list[str]:
    """The field names of the section at `loc` inside `model` (empty when it is not a pydantic section)."""
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = next((a for a in (field.annotation, *get_args(field.annotation))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _text_of(source: str) -> str | None:
    try:
        return Path(source).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def locate(source: str, text: str | None, loc: list[str]) -> str:
    """`file:line` of the key at `loc` (`["train", "settings", "lr"]`), else of its table, else `file`."""
    line = key_line(text, loc) if text else None
    return f"{source}:{line}" if line else source


def key_line(text: str, loc: list[str]) -> int | None:
    """The line of `loc`'s deepest key that the TOML text spells out (a header `[a.b]`, or `key =` inside it)."""
    best: int | None = None
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            table = [p.strip().strip('"') for p in header.group(1).split(".")]
            if (table == loc[:len(table)] or table[:len(loc)] == loc) and best is None:
                best = number
            if table == loc:
                return number
            continue
        assignment = re.match(r"^([A-Za-z0-9_\-.\"' ]+?)\s*=", line)
        if not assignment:
            continue
        key = table + [p.strip().strip('"') for p in assignment.group(1).split(".")]
        if key == loc[:len(key)]:
            if key == loc or re.search(r"[{,]\s*" + re.escape(loc[-1]) + r"\s*=", line):
                return number
            best = number
    return best


def beside(config_path: str | Path, value: str) -> str:
    """A path the config names, found next to the config file when relative (`hf:` dataset names kept)."""
    if Path(value).is_absolute() or value.startswith("hf:"):
        return value
    return str((Path(config_path).parent / value).resolve())


def write_resolved(config: BaseModel, run_dir: Path, name: str = "config.json") -> None:
    (run_dir / name).write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
