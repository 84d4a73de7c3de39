"""The config of `selfplay run` (the self-improvement loop) and of the demo's two arms.

What it is for: one typed, serialisable description of a loop: the policy and its backend, the
task sources (train pool, held-out eval set, optional cold-start SFT rows), how candidates are
made and checked, how they are selected, how the policy is trained, how it is evaluated, how many
rounds, and the budget. Unknown keys are errors that name the key.
What it does not do: run anything (see `selfplay.jobs.loop`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from selfplay.config.common import (AdaptiveSamplingSection, BudgetSection, ModelSection, PRMSection, Problems, Section,
                                    apply_overrides, prm_dir_problem, read_toml, suggest, validate)
from selfplay.config.verifier_spec import MODEL_CHECKS, parse_verifier_spec
from selfplay.core.errors import UserError


class LocalSection(Section):
    hourly_usd: float = Field(default=0.0, ge=0)   # hardware price of the machine running the local backend
    max_batch_rows: int = Field(default=256, ge=1)
    threads: int | None = Field(default=None, ge=1)


class TasksSection(Section):
    train: str | None = None          # JSONL task file of the training pool
    eval: str | None = None           # JSONL task file of the held-out set
    seed_sft: str | None = None       # JSONL of {"messages": [...]} for the cold-start SFT (round 0)
    builtin: Literal["addition"] | None = None   # a built-in family instead of files
    digits: int = Field(default=2, ge=1, le=6)
    # builtin addition: "short" (the demo's): "47+38" -> "85", 3 tokens with the end of turn, what the tiny models
    # learn on a CPU; "worked": "What is 47 + 38?" -> "7+8=15 c1. 4+3+1=8 c0. \boxed{85}" (~34 tokens: max_tokens >= 40)
    style: Literal["short", "worked"] = "short"
    n_seed: int = Field(default=200, ge=0)
    n_train: int = Field(default=1000, ge=1)
    n_eval: int = Field(default=200, ge=1)
    per_round: int | None = Field(default=None, ge=1)   # train tasks sampled per round (default: all)

    @model_validator(mode="after")
    def _one_source(self) -> "TasksSection":
        if self.builtin is None and (self.train is None or self.eval is None):
            raise ValueError("set [tasks] train and eval (JSONL files), or builtin = \"addition\"")
        return self


class LoopGenerate(AdaptiveSamplingSection):  # adaptive K keys and their k_max >= k check: as in `selfplay generate`
    max_tokens: int = Field(default=256, ge=1)
    verifier: str = "math"  # math | code | auto (Task.kind picks) | all_of:/any_of:/weighted:/threshold: specs
    verify_concurrency: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _known_verifier(self) -> "LoopGenerate":
        if self.verifier in MODEL_CHECKS and self.verifier != "prm":  # prm: the [prm] section (selfplay.jobs.prm_refresh)
            raise ValueError(f"verifier {self.verifier!r} is not available in `selfplay run`; use math, code, auto, "
                             "prm (with a [prm] section) or a composition of them")
        parse_verifier_spec(self.verifier)  # a ValueError names the spec and the forms
        return self


class SelectSection(Section):
    rule: Literal["rejection", "best_of_k", "majority"] = "rejection"
    cap_per_task: int | None = Field(default=4, ge=1)
    majority_threshold: float = Field(default=0.5, gt=0, le=1)
    decontaminate_n: int | None = Field(default=13, ge=1)   # drop candidates sharing an n-gram with eval tasks
    max_pairs: int = Field(default=4, ge=1)                 # DPO pairs per task


class TrainSection(Section):
    algorithm: Literal["sft", "dpo", "grpo"] = "sft"
    replay_seed: bool = True          # SFT: keep the cold-start rows in every round's data (GRPO: anchor rows)
    cold_start_epochs: int = Field(default=3, ge=0)
    cold_start_steps: int | None = Field(default=None, ge=1)   # overrides cold_start_epochs when set
    settings: dict[str, Any] = Field(default_factory=dict)   # trainer.config.TrainConfig fields
    iterations: int | None = Field(default=None, ge=1)   # GRPO: sample -> update iterations per round (None: 1;
                                                         # selfplay.jobs.algorithms.grpo)
    # GRPO dynamic sampling (DAPO, selfplay.jobs.algorithms.grpo): an iteration tops up with more tasks until its
    # groups with mixed rewards reach signal_target x its tasks, drawing at most signal_max_extra x its samples more
    # (0: off, the default: at seed 1 it cost 30-62% more samples for no measured gain, docs/trainer.md, and the demo's
    # arms compare at equal samples per round). Try 0.4 (above the ~31% of mixed groups at the demo's cold start).
    signal_target: float = Field(default=0.0, ge=0, le=1)
    signal_max_extra: float = Field(default=1.0, ge=0)


class EvalSection(Section):
    k: int = Field(default=8, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class LoopSection(Section):
    rounds: int = Field(default=4, ge=0)
    arm: Literal["self_improve", "control"] = "self_improve"   # control: same steps on the seed set alone
    control_steps: list[int] | None = None                       # control: optimizer steps per round
    # exit 5 (selfplay.jobs.loop.NoImprovement) when no round trained on anything or held-out pass@1 never rose
    # above round 0's; false for smoke runs of the mechanics (resume, budget) on models too small to learn
    require_improvement: bool = True


class GuardsSection(Section):
    """Per-round guards (selfplay.pipeline.guards): a round that fails one is rejected and the previous checkpoint kept."""
    enabled: bool = True
    max_pass_drop: float | None = Field(default=0.05, ge=0)          # held-out pass@1 fall vs the last kept round
    max_kl: float | None = Field(default=None, ge=0)                 # KL to the cold start, nats per token
    min_entropy: float | None = Field(default=None, ge=0)            # policy entropy on eval samples, nats per token
    max_entropy: float | None = Field(default=None, ge=0)
    max_chosen_logp_drop: float | None = Field(default=5.0, ge=0)    # DPO: chosen log-prob fall, nats per completion
    reject_on_audit_alarm: bool = False                              # the verifier audit's alarm rejects the round


class MonitorsSection(Section):
    """Per-round monitors (selfplay.pipeline.monitors): diversity, entropy / KL to the cold start, verifier audit."""
    logp_samples: int = Field(default=64, ge=0)              # eval samples scored for entropy and KL (0: off)
    audit_fraction: float = Field(default=0.1, ge=0, le=1)   # accepted training candidates re-checked
    audit_threshold: float = Field(default=0.2, ge=0, le=1)  # disagreement rate that raises the alarm


class LoopPRMSection(PRMSection):
    """`verifier = "prm"` in the loop (selfplay.jobs.prm_refresh): the PRM of `selfplay train prm` verifies the
    training candidates; `retrain = "each_round"` relabels each round's candidates by the reference answer and
    fine-tunes the PRM on them (run_dir/prm/round-R verifies round R+1)."""
    retrain: Literal["off", "each_round"] = "off"
    settings: dict[str, Any] = Field(default_factory=dict)   # trainer.config.TrainConfig fields for the retraining


class TrackingSection(Section):
    """Experiment tracking (selfplay.tracking): accelerate trackers fed per round and per training step."""
    report_to: str | list[str] = Field(default_factory=list)   # "tensorboard", "wandb", "trackio", ... (off: [])

    @property
    def names(self) -> list[str]:
        return [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)

    @model_validator(mode="after")
    def _installed(self) -> "TrackingSection":
        from selfplay.tracking import check_report_to

        try:
            check_report_to(self.names)  # an unknown or uninstalled tracker fails at load, not after round 0
        except UserError as exc:
            raise ValueError(str(exc).removeprefix("[tracking] ")) from exc
        return self


class PolicySection(Section):
    """Where the loop's policy samples (selfplay.policy): in this process, or on a server each round is published to."""
    mode: Literal["local", "served", "colocated"] = "local"   # colocated: an in-process vLLM engine (GPU)
    url: str | None = None                 # served: the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1
    base_model: str | None = None          # served: the model id the server lists for its base weights
    publish: Literal["lora", "restart"] = "lora"   # lora: vLLM's runtime LoRA API; restart: a command per round
    adapter_dir: str | None = None         # served: where round checkpoints go (the server reads them); RUN/checkpoints
    adapter_prefix: str = Field(default="round", pattern=r"^[A-Za-z0-9_.]+$")   # adapter names: PREFIX-R-DIGEST
    restart_command: str | None = None     # restart: restarts the server on {checkpoint} and returns
    health_timeout_s: float = Field(default=600.0, gt=0)
    api_key_env: str | None = None
    hourly_usd: float = Field(default=0.0, ge=0)   # served: the server's price per hour, for the time it answers us
    timeout_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)   # colocated: extra vllm.LLM(...) arguments


class RunConfig(Section):
    model: ModelSection
    policy: PolicySection = Field(default_factory=PolicySection)
    local: LocalSection = Field(default_factory=LocalSection)
    tasks: TasksSection
    generate: LoopGenerate = Field(default_factory=LoopGenerate)
    select: SelectSection = Field(default_factory=SelectSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    loop: LoopSection = Field(default_factory=LoopSection)
    guards: GuardsSection = Field(default_factory=GuardsSection)
    monitors: MonitorsSection = Field(default_factory=MonitorsSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    prm: LoopPRMSection | None = None   # verifier = "prm"
    budget: BudgetSection = Field(default_factory=BudgetSection)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)


# The [model] keys `selfplay run` reads: the policy runs in this process (selfplay.policy.LocalPolicy).
MODEL_KEYS_USED = {"name", "backend", "path"}
# [train] settings that only one algorithm reads.
ALGORITHM_SETTINGS = {"beta": "dpo", "rpo_alpha": "dpo", "kl_coef": "grpo", "clip_eps": "grpo", "clip_eps_high": "grpo",
                      "normalize_std": "grpo", "drop_zero_advantage": "grpo", "negative_advantage_scale": "grpo",
                      "anchor_coef": "grpo"}
# Pinned on resume: what is generated, verified, selected, trained and evaluated. Not pinned: the
# budget, concurrency, display, threads, monitors and the number of rounds (raise it to continue a run).
PINNED = {"model": ("name", "backend", "path"),
          "policy": ("mode", "base_model", "publish", "adapter_prefix"),  # url may move; what answers may not
          "tasks": tuple(TasksSection.model_fields),
          "generate": ("k", "max_tokens", "temperature", "top_p", "stop", "seed", "system_prompt", "workflow",
                       "workflow_options", "verifier", "k_max", "stop_after_verified", "batch", "low_pass_rate"),
          "select": tuple(SelectSection.model_fields),
          "train": tuple(TrainSection.model_fields),
          "eval": tuple(EvalSection.model_fields),
          "loop": ("arm", "control_steps"),
          "guards": tuple(GuardsSection.model_fields),  # guards decide which rounds are kept (monitors only measure)
          "prm": tuple(LoopPRMSection.model_fields)}    # the PRM decides what is trained on


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The validated loop config: every key checked, every file found, before any model is built."""
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate(RunConfig, data, str(path))
    base = Path(path).parent
    for key in ("train", "eval", "seed_sft"):
        value = getattr(config.tasks, key)
        if value and not Path(value).is_absolute() and not value.startswith("hf:"):  # hf: selfplay.tasks.sources
            setattr(config.tasks, key, str((base / value).resolve()))
    if config.policy.adapter_dir and not Path(config.policy.adapter_dir).is_absolute():
        config.policy.adapter_dir = str((base / config.policy.adapter_dir).resolve())  # the server reads it
    if config.prm is not None and not Path(config.prm.path).is_absolute():  # a PRM dir is found next to the config
        config.prm.path = str((base / config.prm.path).resolve())
    check_run_config(config, str(path))
    return config


def check_run_config(config: RunConfig, source: str) -> None:
    """Refuse keys with no effect in this setup, bad trainer settings, missing files: every problem in ONE
    UserError, each at file:line (`fail` records a problem; the checks go on to find the others)."""
    problems = Problems(source)
    fail = problems.add
    model = config.model
    _check_policy(config, fail)
    for key in sorted(model.model_fields_set - MODEL_KEYS_USED):
        hint = "; set [local] hourly_usd instead" if key == "hourly_usd" else ""
        fail(["model", key], f"has no effect in `selfplay run` (it loads the policy from [model] path or name and "
             f"runs it in this process); remove it{hint}")
    if config.prices:
        fail(["prices"], "has no effect in `selfplay run` (the loop's policy is priced by the hour: [local] "
             "hourly_usd x measured time, or [policy] hourly_usd for a served one); remove [prices]")
    _check_tasks(config.tasks, fail)
    _check_train(config, fail)
    _check_generate(config.generate, fail, served=config.policy.mode == "served")
    _check_prm(config, fail)
    sel, algorithm = config.select, config.train.algorithm
    for key in ("rule", "cap_per_task", "majority_threshold"):
        if key in sel.model_fields_set and algorithm != "sft":
            fail(["select", key], f"only SFT rounds read it, but [train] algorithm = {algorithm!r}; remove it")
    if "majority_threshold" in sel.model_fields_set and sel.rule != "majority":
        fail(["select", "majority_threshold"], f"only rule = \"majority\" reads it (rule is {sel.rule!r}); remove it")
    if "max_pairs" in sel.model_fields_set and algorithm != "dpo":
        fail(["select", "max_pairs"], f"only DPO reads it, but [train] algorithm = {algorithm!r}; remove it")
    if config.loop.control_steps is not None and config.loop.arm != "control":
        fail(["loop", "control_steps"], "only the control arm reads it; set arm = \"control\" or remove it")
    problems.raise_if_any()


def _check_tasks(tasks: TasksSection, fail) -> None:
    builtin_keys = ("digits", "style", "n_seed", "n_train", "n_eval")
    if tasks.builtin is not None:
        _check_drawable(tasks, fail)
        for key in ("train", "eval", "seed_sft"):
            if getattr(tasks, key) is not None:
                fail(["tasks", key], f"has no effect next to builtin = {tasks.builtin!r} (the built-in family makes "
                     f"its own train, eval and seed rows); remove it, or remove builtin to use your files")
        return
    for key in builtin_keys:
        if key in tasks.model_fields_set:
            fail(["tasks", key], "only builtin = \"addition\" reads it; remove it (your tasks come from files)")
    for key, what in (("train", "the JSONL task file of the training pool"),
                      ("eval", "the JSONL task file of the held-out set"),
                      ("seed_sft", "a JSONL file of {\"messages\": [...]} rows for the cold-start SFT")):
        value = getattr(tasks, key)
        if value is not None and not value.startswith("hf:") and not Path(value).is_file():
            fail(["tasks", key], f"file {value} does not exist; set [tasks] {key} to {what} "
                 f"(a relative path is read next to the config)")


def _check_drawable(tasks: TasksSection, fail) -> None:
    """The built-in family draws distinct operand pairs: n_seed + n_train + n_eval of them must exist."""
    from selfplay.tasks.builtin import pair_count

    needed, exist = tasks.n_seed + tasks.n_train + tasks.n_eval, pair_count(tasks.digits)
    if needed > exist:
        fail(["tasks", "digits"], f"{tasks.digits}-digit operands make only {exist} distinct pairs, but n_seed + "
             f"n_train + n_eval = {tasks.n_seed} + {tasks.n_train} + {tasks.n_eval} = {needed} are asked for; raise "
             f"digits or lower n_seed / n_train / n_eval")


def _check_train(config: RunConfig, fail) -> None:
    from trainer.config import TrainConfig

    train, settings = config.train, config.train.settings
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in settings:
        if key in ("sft", "dpo", "grpo"):  # per-algorithm settings (selfplay.jobs.phases.train_config)
            if not isinstance(settings[key], dict):
                fail(["train", "settings", key], "expected a table of trainer settings, e.g. { lr = 3e-4 }")
                continue
            for sub in settings[key]:
                if sub not in known:
                    fail(["train", "settings", key, sub], f"unknown trainer setting{suggest(sub, known)}")
            continue
        if key not in known:
            fail(["train", "settings", key], f"unknown trainer setting{suggest(key, known)}")
            continue
        if key.startswith("lora") and not _publishes_lora(config):
            fail(["train", "settings", key], "has no effect here (the loop trains the full model; LoRA rounds need "
                 "[policy] mode = \"served\" with publish = \"lora\"); remove it")
        wants = ALGORITHM_SETTINGS.get(key)
        if wants and wants != train.algorithm:
            fail(["train", "settings", key], f"only {wants.upper()} reads it, but [train] algorithm = "
                 f"{train.algorithm!r}; remove it")
    flat = {k: v for k, v in settings.items() if k not in ("sft", "dpo", "grpo")}
    try:
        if set(flat) <= set(known):  # unknown keys are reported above, once
            TypeAdapter(TrainConfig).validate_python(flat)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "settings"
        fail(["train", "settings", key], f"{error['msg']} (got {error.get('input')!r})")
    except (ValueError, TypeError) as exc:
        fail(["train", "settings"], str(exc))
    if "iterations" in train.model_fields_set and train.algorithm != "grpo":
        fail(["train", "iterations"], f"only GRPO rounds iterate sample -> update, but algorithm = "
             f"{train.algorithm!r}; remove it")
    for key in ("signal_target", "signal_max_extra"):
        if key in train.model_fields_set and train.algorithm != "grpo":
            fail(["train", key], f"only GRPO rounds top up their groups (dynamic sampling), but algorithm = "
                 f"{train.algorithm!r}; remove it")
    if "replay_seed" in train.model_fields_set and train.algorithm not in ("sft", "grpo"):  # GRPO: anchor rows
        fail(["train", "replay_seed"], f"only SFT and GRPO rounds replay seed rows, but algorithm = "
             f"{train.algorithm!r}; remove it")
    if config.tasks.builtin is None and config.tasks.seed_sft is None:
        for key in ("cold_start_epochs", "cold_start_steps"):
            if key in train.model_fields_set:
                fail(["train", key], "there is no cold start without seed rows; set [tasks] seed_sft or remove it")


def _check_generate(gen: LoopGenerate, fail, served: bool = False) -> None:
    from agents.workflows.registry import validate_options

    if "concurrency" in gen.model_fields_set and not served:
        fail(["generate", "concurrency"], "has no effect in `selfplay run` (the local policy batches requests by "
             "[local] max_batch_rows); remove it")
    try:
        options = validate_options(gen.workflow, gen.workflow_options)
    except ValueError as exc:
        fail(["generate", "workflow"], str(exc))
        options = None
    if getattr(options, "critic_model", None):
        fail(["generate", "workflow_options"], "critic_model: `selfplay run` has one in-process policy, so the "
             "policy critiques itself; remove critic_model")


def _publishes_lora(config: RunConfig) -> bool:
    return config.policy.mode in ("served", "colocated") and config.policy.publish == "lora"


def _check_policy(config: RunConfig, fail) -> None:
    """[policy] and [model] backend together: a local policy samples here, a served one needs its server's keys."""
    import os

    policy, backend = config.policy, config.model.backend
    if policy.mode == "local":
        if backend != "local":
            fail(["model", "backend"], f"{backend!r} with [policy] mode = \"local\": the loop trains and samples "
                 "the policy in this process, so set backend = \"local\"; to sample from a server (vLLM, "
                 "selfplay serve), set [policy] mode = \"served\", url and base_model")
        for key in sorted(policy.model_fields_set - {"mode"}):
            fail(["policy", key], "has no effect with mode = \"local\"; set mode = \"served\" or remove it")
        return
    base = config.model.path or config.model.name
    if policy.publish == "lora" and not Path(base).is_dir():
        fail(["model", "path"], f"a LoRA policy trains adapters over the weights its server serves, so they must "
             f"be the same files: set path to the base model's directory (the one the server loads), not {base!r}")
    if policy.mode == "colocated":
        for key in sorted(policy.model_fields_set & {"url", "base_model", "publish", "restart_command",
                                                     "api_key_env", "timeout_s", "max_attempts", "health_timeout_s"}):
            fail(["policy", key], "has no effect with mode = \"colocated\" (the vLLM engine runs in this process "
                 "over [model] path, a LoRA adapter per round); remove it")
        if not config.train.settings.get("lora"):
            fail(["train", "settings", "lora"], "mode = \"colocated\" serves each round as a LoRA adapter: add "
                 "lora = true (and lora_r, lora_alpha) to [train] settings")
        return
    if "engine_kwargs" in policy.model_fields_set:
        fail(["policy", "engine_kwargs"], "only mode = \"colocated\" builds a vLLM engine here; remove it")
    if backend == "vllm":
        fail(["model", "backend"], "\"vllm\" is not a served policy: with [policy] mode = \"served\" the loop "
             "samples through the openai backend; set backend = \"local\" (or \"openai\")")
    for key, example in (("url", "url = \"http://127.0.0.1:8000/v1\""),
                         ("base_model", "base_model = \"Qwen/Qwen2.5-1.5B-Instruct\" (as the server's /v1/models "
                                        "lists it)")):
        if not getattr(policy, key):
            fail(["policy", key], f"a served policy needs it: set {example}")
    if policy.api_key_env and not os.environ.get(policy.api_key_env):
        fail(["policy", "api_key_env"], f"the environment variable {policy.api_key_env} is not set; export it or "
             "remove api_key_env (a server without auth)")
    lora = bool(config.train.settings.get("lora"))
    if policy.publish == "lora":
        if not lora:
            fail(["train", "settings", "lora"], "publish = \"lora\" serves each round as a LoRA adapter, so the "
                 "trainer must train one: add lora = true (and lora_r, lora_alpha) to [train] settings, or set "
                 "[policy] publish = \"restart\" with a restart_command")
        if policy.restart_command:
            fail(["policy", "restart_command"], "only publish = \"restart\" runs it; remove it")
        return
    if not policy.restart_command:
        fail(["policy", "restart_command"], "publish = \"restart\" needs the command that restarts the server on "
             "a checkpoint, e.g. restart_command = \"./restart-vllm.sh {checkpoint}\" (it must return once the "
             "restart is under way; the loop then waits for /health)")
    if lora:
        fail(["train", "settings", "lora"], "publish = \"restart\" serves full checkpoints; remove lora, or set "
             "[policy] publish = \"lora\"")


def _check_prm(config: RunConfig, fail) -> None:
    """`verifier = "prm"` needs a [prm] section whose path is a PRM directory; [prm] alone has no effect."""
    wants = config.generate.verifier == "prm"
    if config.prm is None:
        if wants:
            fail(["generate", "verifier"], "\"prm\" needs a [prm] section with path = a PRM directory written by "
                 "`selfplay train prm`")
        return
    if not wants:
        fail(["prm"], f"only verifier = \"prm\" reads it, but [generate] verifier = {config.generate.verifier!r}; "
             "remove [prm] or set verifier = \"prm\"")
    problem = prm_dir_problem(config.prm.path)
    if problem:
        fail(["prm", "path"], f"{problem}; set [prm] path to a directory written by `selfplay train prm` "
             "(a relative path is read next to the config)")
    if config.generate.workflow == "feedback":
        fail(["generate", "workflow"], "feedback checks answers with the round's verifier, which the loop's PRM "
             "does not provide; use direct or self_refine with verifier = \"prm\"")
    if config.train.algorithm == "grpo":
        fail(["train", "algorithm"], "GRPO's on-policy rounds (selfplay.jobs.online_rl) do not verify with the "
             "loop's PRM; use sft or dpo with verifier = \"prm\"")
    if config.prm.settings and config.prm.retrain == "off":
        fail(["prm", "settings"], "only retrain = \"each_round\" reads it; remove it or set retrain")
    from trainer.config import TrainConfig

    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in config.prm.settings:
        if key not in known:
            fail(["prm", "settings", key], f"unknown trainer setting{suggest(key, known)}")
    try:
        if set(config.prm.settings) <= set(known):  # unknown keys are reported above, once
            TypeAdapter(TrainConfig).validate_python(config.prm.settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "settings"
        fail(["prm", "settings", key], f"{error['msg']} (got {error.get('input')!r})")

