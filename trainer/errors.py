"""The trainer's errors, in one tree: bad input to the trainer, each naming what is wrong and how to fix it.

    TrainerError (a ValueError)     the root: `except TrainerError` catches every error the trainer raises on purpose
    ├── ConfigError                 a TrainConfig value, key or file (trainer.config; a LoRA setting without adapters;
    │                               an unknown dtype; a PRM step separator that makes no token)
    ├── DataError                   rows that are not the dataset format, or none that fits max_length (trainer.data,
    │                               trainer.sft, trainer.dpo, trainer.prm); the message reads `file:row N: ...; fix`
    └── ModelError                  the model or its tokenizer cannot do what is asked (a chat template that is
        │                           missing or not prefix-stable: trainer.encode)
        └── ModelNotFound           a name that is neither a local directory nor a built-in tiny config (trainer.models)

The root is a ValueError, so callers that catch ValueError (pydantic's validation of TrainConfig, argument
parsing) keep working. `selfplay` turns these into its `UserError` where it calls the trainer.
What it does not do: wrap torch's own errors (out of memory, device errors), which are not the user's input.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "ModelError", "ModelNotFound", "TrainerError"]


class TrainerError(ValueError):
    """Bad input to the trainer; the message names the culprit and the fix."""


class ConfigError(TrainerError):
    """A TrainConfig value, key or file the trainer cannot use."""


class DataError(TrainerError):
    """Bad training data; the message reads `file:row N: what is wrong; how to fix`."""


class ModelError(TrainerError):
    """The model or its tokenizer cannot do what is asked (e.g. its chat template)."""


class ModelNotFound(ModelError):
    """The model name is neither a local directory nor a built-in tiny config."""
