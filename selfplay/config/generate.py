"""The config of `selfplay generate`: its sections, its pinned keys, its cross-field checks, its loader.

What it is for: `load_generate_config(path, overrides)` -> a validated `GenerateConfig` whose task file is
found next to the config, with every problem (field errors, then the checks between fields) in one message
naming file:line. `PINNED` is what a resumed generate run must keep (`selfplay.config.resume.check_resume`):
what is sampled and how it is verified; budget, concurrency and the executor may change between sessions.
What it does not do: load tasks or talk to the model (`selfplay.jobs.generate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from selfplay.config.common import (AdaptiveSamplingSection, BudgetSection, ExecutorSection, JudgeSection,
                                    ModelSection, PRMSection, Problems, Section, apply_overrides, beside, read_toml,
                                    validate)
from selfplay.config.verifier_spec import parse_verifier_spec

__all__ = ["PINNED", "GenerateConfig", "GenerateSection", "check_generate", "load_generate_config"]


class GenerateSection(AdaptiveSamplingSection):
    tasks: str
    verifier: str | None = None          # "math" | "code" | "judge" | "prm" | "auto" | compositions: verify as it lands
    candidates_jsonl: bool | None = None  # write candidates.jsonl at the end (None: only up to 50,000 candidates)


class GenerateConfig(Section):
    model: ModelSection
    critic: ModelSection | None = None   # self_refine's critic_model; defaults to [model] with that name
    judge: JudgeSection | None = None    # verifier = "judge"
    prm: PRMSection | None = None        # verifier = "prm"
    generate: GenerateSection
    budget: BudgetSection = Field(default_factory=BudgetSection)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)


# What is generated and how it is checked: a resumed job must keep these (low_pass_rate was never pinned here).
PINNED = {"model": ("name", "backend", "base_url"),
          "generate": ("tasks", "k", "max_tokens", "temperature", "top_p", "stop", "seed", "system_prompt",
                       "workflow", "workflow_options", "verifier", "k_max", "stop_after_verified", "batch")}


def load_generate_config(path: str | Path, overrides: list[str] | None = None) -> GenerateConfig:
    """The validated generate config: every key and every check between keys, before any request is sent."""
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate(GenerateConfig, data, str(path))
    config.generate.tasks = beside(path, config.generate.tasks)  # files are found next to the config
    check_generate(config, str(path))
    return config


def check_generate(config: GenerateConfig, source: str | None = None) -> None:
    """The checks between keys (workflow and its options, the verifier and its section, adaptive K, batch mode):
    every problem in one UserError, at file:line when `source` is the config file."""
    from agents.workflows.registry import validate_options

    problems = Problems(source)
    gen = config.generate
    try:
        validate_options(gen.workflow, gen.workflow_options)
    except ValueError as exc:
        problems.add(["generate", "workflow_options"], f"workflow = {gen.workflow!r}: {exc}")
    if gen.workflow == "feedback" and gen.verifier is None:
        problems.add(["generate", "workflow"], "\"feedback\" needs a verifier: set verifier = \"math\" or \"code\"")
    for name in ("judge", "prm"):
        if gen.verifier == name and getattr(config, name) is None:
            problems.add(["generate", "verifier"], f"\"{name}\" needs a [{name}] section (see README: Verifiers)")
    if gen.verifier is not None:  # math, code, judge, prm, auto (by Task.kind) or a composition
        try:
            parse_verifier_spec(gen.verifier)
        except ValueError as exc:
            problems.add(["generate", "verifier"], str(exc))
    if (gen.k_max or gen.stop_after_verified) and gen.verifier is None:
        problems.add(["generate", "k_max" if gen.k_max else "stop_after_verified"],
                     "adaptive K (k_max / stop_after_verified) needs a verifier: set verifier = ...")
    model = config.model
    if model.batch and (model.backend != "openai" or config.executor.kind != "local"):
        problems.add(["model", "batch"], "batch = true needs backend = \"openai\" and [executor] kind = \"local\" "
                     f"(got backend = {model.backend!r}, [executor] kind = {config.executor.kind!r})")
    problems.raise_if_any()
