"""The Candidate: ONE typed record of one sampled answer, from the sampler to the trainer rows and the export.

What it is for: every stage after sampling reads and writes this record, never a dict:
- the sampler builds it from an `agents` Trajectory (`Candidate.from_trajectory`);
- the run store stores it compactly (`to_store`: the completion only; the prompt is stored once per distinct
  prompt in the `prompts` table and joined back by `prompt_id`), and returns it (`from_store`, which also reads the
  version-1 bodies that carried the whole conversation);
- verification attaches its `verdict` (`with_verdict`); selection, the datasets and the monitors read the verdict
  through `passed`, `score`, `answer`, `judged`, `verifier_error`;
- training rows carry `candidate_ids` (`id`: `r{round}/{workflow}/{task}/{sample}`), so the export and the round's
  `train.jsonl` name the candidates each row came from without re-identifying them by content.
`error` is the ROLLOUT's error (a failed request / workflow: recorded, never scored); `verifier_error` is the
verifier's (unknown, neither a pass nor a fail).
What it does not do: decide anything (selection rules live in `selfplay.pipeline.select`), or touch SQL.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.llm.types import Usage
from verifiers.verdict import Verdict

Message = dict[str, Any]
ANSWER = "answer"  # a stored body's `completion` / `steps` that is only the final answer (see `to_store`)
# fields of a Trajectory that the candidate keeps as they are
_TRAJECTORY_FIELDS = ("task_id", "sample_index", "model", "final_answer", "steps", "finish_reason", "usage",
                      "cost_usd", "requests", "cache_hits", "turns", "tool_calls", "tool_errors", "stop_reason",
                      "error", "error_message", "metadata", "completion_token_ids", "completion_logprobs")


class Candidate(BaseModel):
    """One sampled answer of one task, with what produced it and (once verified) its verdict."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    round: int = 0
    workflow: str                      # the label it is filed under ("eval" for held-out samples)
    sample_index: int
    generator: str | None = None       # the workflow that made it, when filed under another label
    task_kind: str | None = None
    model: str = ""
    prompt: list[Message] = Field(default_factory=list)       # shared by the task's candidates (stored once)
    completion: list[Message] = Field(default_factory=list)   # the generated turns (assistant / tool)
    final_answer: str = ""
    steps: list[str] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    requests: int = 0
    cache_hits: int = 0
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    stop_reason: str | None = None
    error: str | None = None           # the rollout failed (recorded, never scored)
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    completion_token_ids: list[int] | None = None   # the last completion message as sampled
    completion_logprobs: list[float] | None = None  # their sampling log-probs
    verdict: Verdict | None = None     # attached by verification (stored in the verdicts table, not here)

    # --- identity ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return candidate_id(self.round, self.workflow, self.task_id, self.sample_index)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.task_id, self.workflow, self.sample_index

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def messages(self) -> list[Message]:
        return [*self.prompt, *self.completion]

    @property
    def completion_messages(self) -> list[Message]:  # the Trajectory attribute `agents.workflows.stats` reads
        return self.completion

    @property
    def text(self) -> str:
        return self.final_answer

    # --- the verdict, as selection reads it --------------------------------------------------------
    @property
    def verifier_error(self) -> str | None:
        return self.verdict.error if self.verdict is not None else None

    @property
    def judged(self) -> bool:
        return self.verdict is not None and not self.verdict.error

    @property
    def passed(self) -> bool:
        return self.judged and bool(self.verdict.passed)

    @property
    def score(self) -> float:
        return float(self.verdict.score) if self.verdict is not None else 0.0

    @property
    def answer(self) -> str | None:
        """The extracted answer (majority vote), when the verifier reported one."""
        extracted = (self.verdict.details or {}).get("extracted") if self.verdict is not None else None
        return ",".join(map(str, extracted)) if extracted else None

    @property
    def token_ids(self) -> list[int] | None:
        return self.completion_token_ids or None

    @property
    def logprobs(self) -> list[float] | None:
        ids, logprobs = self.completion_token_ids, self.completion_logprobs
        return logprobs if ids and logprobs and len(logprobs) == len(ids) else None

    def with_verdict(self, verdict: Verdict | dict[str, Any] | None) -> "Candidate":
        if isinstance(verdict, dict):
            verdict = Verdict.model_validate(verdict)
        return self.model_copy(update={"verdict": verdict})

    # --- building and storing ----------------------------------------------------------------------
    @classmethod
    def trusted(cls, **values: Any) -> "Candidate":
        """A candidate from values that are already of their fields' types, EVERY field given (the streamed sampler
        builds a million of them): what `model_construct` makes, without its per-field loop, and without the
        copies validation makes (candidates built together share their prompt list, so `to_store` keys it once)."""
        if values.keys() != _FIELD_NAMES:
            raise TypeError(f"Candidate.trusted needs every field: missing {sorted(_FIELD_NAMES - values.keys())}, "
                            f"unknown {sorted(values.keys() - _FIELD_NAMES)}")
        candidate = cls.__new__(cls)
        _set = object.__setattr__
        _set(candidate, "__dict__", values)
        _set(candidate, "__pydantic_fields_set__", set(_FIELD_NAMES))
        _set(candidate, "__pydantic_extra__", None)
        _set(candidate, "__pydantic_private__", None)
        return candidate

    @classmethod
    def from_trajectory(cls, trajectory: Any, *, round_: int, task_kind: str | None = None,
                        label: str | None = None) -> "Candidate":
        """The candidate of an `agents` Trajectory; filed under `label` (keeping `generator`) when given."""
        split = trajectory.prompt_messages
        messages = [m if isinstance(m, dict) else m.model_dump(mode="json") for m in trajectory.messages]
        values = {name: getattr(trajectory, name) for name in _TRAJECTORY_FIELDS}
        values["usage"] = trajectory.usage.model_copy()
        return cls(**values, round=round_, workflow=label or trajectory.workflow,
                   generator=trajectory.workflow if label is not None else None, task_kind=task_kind,
                   prompt=messages[:split], completion=messages[split:])

    def to_store(self) -> tuple[str, str]:
        """(prompt_id, body): the compact JSON body; the prompt goes to its own table, the verdict to its own.

        Compact (a short answer's body is ~300 bytes, so K = 1M fits in well under 1 KB per candidate): fields at
        their default are left out (`from_store` puts the defaults back), and the copies of the final answer are
        written once: a completion that is exactly one assistant message saying `final_answer` is stored as
        `"completion": "answer"`, and steps that are exactly `[final_answer]` as `"steps": "answer"`."""
        answer = self.final_answer
        shared = []  # the fields that are only the answer: written as the marker, not as a copy
        if answer and self.completion == [{"role": "assistant", "content": answer}]:
            shared.append("completion")
        if answer and self.steps == [answer]:
            shared.append("steps")
        body = self.model_dump_json(exclude={"prompt", "verdict", *shared}, exclude_defaults=True)
        if shared:
            body = body[:-1] + "".join(f',"{name}":"{ANSWER}"' for name in shared) + "}"
        return _prompt_id_of(self.prompt), body

    @classmethod
    def from_store(cls, body: str | dict[str, Any], prompt: list[Message] | None = None) -> "Candidate":
        """A stored body: this version's compact one, the full one of the version before it, or a version-1 body
        that carried the whole conversation."""
        data = json.loads(body) if isinstance(body, str) else dict(body)
        if "messages" in data and "completion" not in data:  # schema 1: the trajectory as it was sampled
            split = data.pop("prompt_messages", 1)
            messages = data.pop("messages")
            data["prompt"], data["completion"] = messages[:split], messages[split:]
        elif prompt is not None:
            data["prompt"] = prompt
        if data.get("completion") == ANSWER:
            data["completion"] = [{"role": "assistant", "content": data.get("final_answer", "")}]
        if data.get("steps") == ANSWER:
            data["steps"] = [data.get("final_answer", "")]
        return cls.model_validate(data)

    def export_row(self) -> dict[str, Any]:
        """The row of `candidates.jsonl`: every field, the whole conversation as `messages`, `id`."""
        row = self.model_dump(mode="json", exclude={"prompt", "completion", "verdict"})
        return {"id": self.id, **row, "messages": self.messages, "prompt_messages": len(self.prompt)}


_FIELD_NAMES = frozenset(Candidate.model_fields)


def candidate_id(round_: int, workflow: str, task_id: str, sample_index: int) -> str:
    return f"r{round_}/{workflow}/{task_id}/{sample_index}"


_LAST_PROMPT: list[Any] = [None, None]  # (the prompt list last keyed, its id): K candidates share one prompt object


def _prompt_id_of(prompt: list[Message]) -> str:
    """`prompt_id`, remembered for the last prompt object (candidates of one task share it; prompts are not
    mutated once sampled)."""
    if _LAST_PROMPT[0] is not prompt:
        _LAST_PROMPT[:] = [prompt, prompt_id(prompt)]
    return _LAST_PROMPT[1]


def prompt_id(prompt: list[Message]) -> str:
    """Content key of a prompt: the same messages always get the same id (16 bytes of SHA-256)."""
    text = json.dumps(prompt, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
