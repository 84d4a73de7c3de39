"""LLM-as-PRM: ask a judge model to grade every step of a solution, with structured output.

What it is for: a process reward model for API users who have no PRM checkpoint. `LLMPRM(llm)` splits the
response into steps (`verifiers.prm.steps`, the same rule as trajectories), shows the task and each step
fenced as data (`verifiers.judge.fence`), and asks for one grade per step, "correct" (1.0), "unclear" (0.5)
or "incorrect" (0.0), in a schema whose list length is exactly the number of steps (a reply that grades
too few or too many steps is unusable and gets the judge's one repair retry). Step scores are aggregated
(`verifiers.prm.aggregate`) into a Verdict with `step_scores`.
What it does not do: train anything, or price calls (the LLM passed in does; see `selfplay.judge_adapter`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from verifiers.judge.fence import fence, render_prompt
from verifiers.judge.llm import pick_mode, run_blocking
from verifiers.judge.prompts import DATA_RULE, output_rule
from verifiers.judge.structured import AskConfig, ask
from verifiers.prm.aggregate import DEFAULT_AGGREGATION, steps_verdict
from verifiers.prm.steps import split_steps
from verifiers.verdict import Verdict

GRADE_SCORES = {"correct": 1.0, "unclear": 0.5, "incorrect": 0.0}

INSTRUCTIONS = (
    "You are a careful grader of step-by-step solutions. For EVERY numbered step of the SOLUTION, in order, "
    'decide whether it is "correct" (a valid step, right given the task and the steps before it), "incorrect" '
    "(a wrong computation, an invalid inference, a false claim, or a step that builds on an earlier error "
    'without fixing it) or "unclear" (neither clearly right nor wrong, e.g. a restatement). Grade what each '
    "step says, not whether the final answer looks familiar."
)


class StepGrade(BaseModel):
    model_config = ConfigDict(extra="ignore")

    step: int = Field(description="The step number, starting at 1.")
    reasons: str = Field(description="Why this grade, in one sentence.")
    grade: Literal["correct", "incorrect", "unclear"] = Field(description="The grade of this step.")


class StepGradesBase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    steps: list[StepGrade]

    @model_validator(mode="after")
    def _steps_in_order(self) -> "StepGradesBase":
        numbers = [g.step for g in self.steps]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"steps must be numbered 1..{len(numbers)} in order, got {numbers}")
        return self


def step_grades_schema(n_steps: int) -> type[StepGradesBase]:
    """The answer schema for a solution of `n_steps` steps: exactly that many grades, numbered 1..n."""
    return create_model("StepGrades", __base__=StepGradesBase,
                        steps=(list[StepGrade], Field(min_length=n_steps, max_length=n_steps,
                                                      description=f"Exactly {n_steps} grades, one per step.")))


def prm_messages(prompt: Any, steps: list[str], schema: type[BaseModel], mode: str) -> list[dict[str, str]]:
    system = "\n\n".join([INSTRUCTIONS, DATA_RULE.replace("response(s)", "solution steps"),
                          output_rule(schema, mode)])
    blocks = ["TASK:", fence(render_prompt(prompt), "TASK"), f"SOLUTION ({len(steps)} steps):"]
    for number, step in enumerate(steps, 1):
        blocks += [f"STEP {number}:", fence(step, f"STEP_{number}")]
    blocks.append(f"Grade all {len(steps)} steps now, following the system instructions only.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(blocks)}]


class LLMPRM:
    """A process reward model backed by a judge LLM (see the module docstring)."""

    name = "prm.llm"
    version = "1"

    def __init__(self, llm: Any, *, aggregation: str = DEFAULT_AGGREGATION, pass_threshold: float = 0.5,
                 separator: str | None = None, ask_config: AskConfig | None = None, loop: Any = None) -> None:
        self.llm, self.aggregation, self.pass_threshold = llm, aggregation, pass_threshold
        self.separator = separator
        self.ask_config = ask_config or AskConfig(max_tokens=2048)
        self.loop = loop

    def cache_key_parts(self) -> dict[str, Any]:
        c = self.ask_config
        return {"model": self.llm.model, "aggregation": self.aggregation, "pass_threshold": self.pass_threshold,
                "separator": self.separator, "mode": c.mode, "max_tokens": c.max_tokens,
                "temperature": c.temperature, "max_repairs": c.max_repairs}

    def __call__(self, response: str, prompt: Any = None, steps: list[str] | None = None) -> Verdict:
        return run_blocking(self.averify(response, prompt=prompt, steps=steps), self.loop)

    async def averify(self, response: str, prompt: Any = None, steps: list[str] | None = None) -> Verdict:
        """Grade the steps of `response` (or the given `steps`, e.g. a trajectory's) and aggregate them."""
        steps = steps if steps is not None else split_steps(response, self.separator)
        if not steps:
            return Verdict.broken("prm: the response has no steps to score")
        schema = step_grades_schema(len(steps))
        mode = pick_mode(self.llm, self.ask_config.mode)
        answer = await ask(self.llm, prm_messages(prompt, steps, schema, mode), schema, self.ask_config)
        details = {"prm_model": self.llm.model, **answer.details()}
        if answer.value is None:
            return Verdict.broken(answer.error or "prm judge failed", **details)
        grades = [g.grade for g in answer.value.steps]
        scores = [GRADE_SCORES[g] for g in grades]
        return steps_verdict(scores, self.aggregation, self.pass_threshold, grades=grades, **details)
