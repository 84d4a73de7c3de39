"""The served policy: trained in this process, sampled from a server (vLLM, SGLang, `selfplay serve`) it publishes to.

What it is for: `selfplay run` with `[policy] mode = "served"`. The trainer trains here (LoRA or full, CPU or GPU);
each round's weights are saved under `[policy] adapter_dir` (default `RUN/checkpoints`, a directory the server
can read), then published:
  - `publish = "lora"`: `checkpoints/round-R/adapter` (peft) is loaded over vLLM's runtime LoRA API as
    `PREFIX-R-DIGEST` (`selfplay.policy.publish.LoraPublisher`; round R-2 unloaded); requests name it as `model`;
  - `publish = "restart"`: `checkpoints/round-R` (a full checkpoint) is handed to `restart_command`
    (`{checkpoint}` replaced), and the loop waits for `/health`; requests name `base_model`.
Sampling goes through the `openai` backend (retries, bounded concurrency) wrapped so that its cache key names
the round and a digest of its weights (`PREFIX-R-DIGEST`): the run store's request cache then answers a resumed
run for every stored request and never for other weights. The first `serve()` of a round in a process
publishes it: after a save here with `publish`, otherwise (a resume) with `ensure`, which loads it again only
when the server lost it (a restarted vLLM forgets runtime adapters); restart mode always restarts then.
The server is priced by the hour (`[policy] hourly_usd`) for the wall time it spends answering this run (the
union of request intervals), each request capped by its reserved worst case.
Round 0 of a LoRA policy also holds the merged weights (`checkpoints/round-0/model.safetensors`), so the
monitors' KL to the cold start loads it like a local checkpoint.
What it does not do: start the server the first time, copy checkpoints to another machine, or merge adapters
for the restart mode (train full weights for it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from selfplay.config.common import ModelSection
from selfplay.config.train import train_config
from selfplay.core.errors import EndpointLost, UserError
from selfplay.pipeline.llm import Engine, build_backend, load_policy_model

ADAPTER = "adapter"


class ServedPolicy:
    def __init__(self, policy: Any, source: str, run_dir: Path, *, train_settings: dict[str, Any], seed: int = 0,
                 concurrency: int = 64) -> None:
        self.cfg = policy
        self.source = source
        self.dir = Path(policy.adapter_dir) if policy.adapter_dir else Path(run_dir) / "checkpoints"
        self.lora = policy.publish == "lora"
        self.train_settings = train_settings
        self.seed = seed
        self.concurrency = concurrency
        self.model: Any = None
        self.tokenizer: Any = None
        self.round: int | None = None
        self._saved_here: set[int] = set()
        self._live: tuple[int, str] | None = None   # (round, key name) published by this process
        self._backends: dict[str, Any] = {}
        self._publisher: Any = None

    # --- checkpoints ------------------------------------------------------------------------------------------
    def checkpoint(self, round_: int) -> Path:
        return self.dir / f"round-{round_}"

    def adapter(self, round_: int) -> Path:
        return self.checkpoint(round_) / ADAPTER

    def has_checkpoint(self, round_: int) -> bool:
        if self.lora:
            return (self.adapter(round_) / "adapter_config.json").is_file()
        return (self.checkpoint(round_) / "config.json").is_file()

    def load_initial(self) -> None:
        model, tokenizer = load_policy_model(self.source, seed=self.seed, source="[model] name/path")
        if self.lora:
            from trainer.lora import apply_lora

            model = apply_lora(model, self._lora_config())
        self.model, self.tokenizer, self.round = model, tokenizer, -1

    def load_round(self, round_: int) -> None:
        if self.round == round_ and self.model is not None:
            return
        if self.lora:
            from peft import PeftModel

            base, tokenizer = load_policy_model(self.source, seed=self.seed, source="[model] name/path")
            model = PeftModel.from_pretrained(base, str(self.adapter(round_)), is_trainable=True)
        else:
            model, tokenizer = load_policy_model(str(self.checkpoint(round_)), seed=self.seed,
                                                 source="[model] name/path")
        self.model, self.tokenizer, self.round = model, tokenizer, round_

    def save(self, round_: int) -> Path:
        """Write round `round_` beside its slot, then rename it in (a half-written round never counts)."""
        from transformers.utils import logging as hf_logging

        from trainer.models import save_model

        hf_logging.disable_progress_bar()
        final = self.checkpoint(round_)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if self.lora:
            self.model.save_pretrained(str(partial / ADAPTER))
            self.tokenizer.save_pretrained(str(partial / ADAPTER))
            if round_ == 0:
                self._save_merged(partial)
        else:
            save_model(self.model, self.tokenizer, str(partial))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        self.round = round_
        self._saved_here.add(round_)
        if self._live and self._live[0] == round_:
            self._live = None  # new weights in this slot: publish them again
        return final

    # --- serving --------------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Before anything is spent: the server answers and serves `base_model` (LoRA mode; restart starts it)."""
        if not self.lora:
            return
        try:
            served = self._lora_publisher().served()
        except EndpointLost as exc:  # nothing started yet: a wrong url or a server not started is the user's input
            raise UserError(str(exc)) from None
        if self.cfg.base_model not in served:
            raise UserError(f"GET {self._lora_publisher().root}/v1/models lists {served}, not [policy] base_model = "
                            f"{self.cfg.base_model!r}; set base_model to the id the server serves its base model as")

    def request_cache(self, store: Any) -> Any:
        """The run store's request cache: keys name the round and its weights, so a resume never pays twice."""
        return store

    async def serve(self) -> Any:
        """The openai backend for the current round's weights, published to the server first when needed."""
        round_ = self.round
        if self._live is None or self._live[0] != round_:
            self._live = (round_, self._publish(round_))
        key_name = self._live[1]
        if key_name not in self._backends:
            self._backends[key_name] = _ServedBackend(self._openai(self._served_name(key_name)), key_name,
                                                      self.cfg.hourly_usd)
        return self._backends[key_name]

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()

    def _publish(self, round_: int) -> str:
        """Make the server serve round `round_`; returns the key name (`PREFIX-R-DIGEST`)."""
        tag = _digest(self.adapter(round_) if self.lora else self.checkpoint(round_))
        if self.lora:
            publisher = self._lora_publisher()
            if round_ in self._saved_here:
                return publisher.publish(round_, self.adapter(round_), tag)
            return publisher.ensure(round_, self.adapter(round_), tag)
        self._restart(self.checkpoint(round_))
        return f"{self.cfg.adapter_prefix}-{round_}-{tag}"

    def _served_name(self, key_name: str) -> str:
        return key_name if self.lora else self.cfg.base_model

    def _restart(self, checkpoint: Path) -> None:
        import shlex

        from agents.llm.vllm_server import VLLMServerError, restart_server, server_root

        command = self.cfg.restart_command.replace("{checkpoint}", shlex.quote(str(checkpoint.resolve())))
        health = f"{server_root(self.cfg.url)}/health"
        try:
            restart_server(command, health, timeout_s=self.cfg.health_timeout_s)
        except VLLMServerError as exc:
            raise UserError(f"[policy] restart_command: {exc}; fix the command or the server, then run again "
                            f"(the round's checkpoint {checkpoint} is kept)") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"[policy] restart_command {command!r} could not run: {exc}") from None

    def _lora_publisher(self) -> Any:
        if self._publisher is None:
            from selfplay.policy.publish import LoraPublisher

            self._publisher = LoraPublisher(self.cfg.url, self._api_key(), timeout_s=self.cfg.timeout_s,
                                            prefix=self.cfg.adapter_prefix)
        return self._publisher

    def _openai(self, model: str) -> Any:
        section = ModelSection(name=model, backend="openai", base_url=self.cfg.url, api_key_env=self.cfg.api_key_env,
                               timeout_s=self.cfg.timeout_s, max_attempts=self.cfg.max_attempts)
        return build_backend(section, self.concurrency, source="[policy]")

    def _api_key(self) -> str | None:
        return os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None

    def _lora_config(self) -> Any:
        return train_config("sft", {}, self.train_settings)

    def _save_merged(self, partial: Path) -> None:
        """Round 0's merged weights next to its adapter: the monitors' cold-start reference loads them."""
        from peft import PeftModel

        from trainer.models import save_model

        base, tokenizer = load_policy_model(self.source, seed=self.seed, source="[model] name/path")
        merged = PeftModel.from_pretrained(base, str(partial / ADAPTER)).merge_and_unload()
        save_model(merged, tokenizer, str(partial))


class _ServedBackend:
    """The openai backend under a key name that names the weights, priced by the server's hour."""

    def __init__(self, inner: Any, key_name: str, hourly_usd: float) -> None:
        from agents.llm.hardware_cost import HardwareMeter

        self.inner = inner
        self.model = key_name
        self.supports_n = inner.supports_n
        self.meter = HardwareMeter(hourly_usd)
        self._charged_until = 0.0

    async def chat(self, messages: Any, params: Any, **kwargs: Any) -> Any:
        cap = self.worst_case_usd(messages, params)  # what the ledger reserved for this request
        started = time.monotonic()
        result = await self.inner.chat(messages, params, **kwargs)
        ended = time.monotonic()
        busy = max(0.0, ended - max(started, self._charged_until))  # time no other request of ours was charged
        self._charged_until = max(self._charged_until, ended)
        self.meter.observe(ended - started, result.usage.total_tokens)
        cost = min(self.meter.share_usd(busy, 1, 1), cap)
        return result.model_copy(update={"cost_usd": cost})

    def worst_case_usd(self, messages: Any, params: Any) -> float:
        from agents.llm.tokens import prompt_token_upper_bound

        return self.meter.worst_case_usd(prompt_token_upper_bound(messages, None) + params.max_tokens * params.n)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _digest(directory: Path) -> str:
    """12 hex digits of sha256 over the directory's weight files (names and bytes)."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not files:
        raise UserError(f"{directory}: no weight files to publish (expected *.safetensors)")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


class ColocatedPolicy(ServedPolicy):
    """`[policy] mode = "colocated"`: the trainer and an in-process vLLM engine share this process (and its GPU).

    The engine (`agents.llm.vllm_backend.VLLMBackend`, `enable_lora=True`, `max_lora_rank` = the trainer's
    `lora_r`) is built once over the base model; each round's adapter is served with a fresh `LoRARequest`
    (`reload(adapter_dir, name=PREFIX-R-DIGEST)`), so the request cache keys name the weights as in served mode.
    Written against vLLM's documented API and tested with the labelled fake (tests/fake_vllm.py), never on vLLM.
    """

    vllm_api: Any = None  # tests inject tests.fake_vllm.fake_api() here; None imports vllm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine: Any = None

    async def prepare(self) -> None:
        """vLLM must be importable before anything is spent (the engine itself is built on the first serve)."""
        if self.vllm_api is None:
            from agents.llm.vllm_backend import import_vllm

            try:
                import_vllm()
            except ImportError as exc:
                raise UserError(f"[policy] mode = \"colocated\": {exc}") from None

    async def serve(self) -> Any:
        round_ = self.round
        if self._live is None or self._live[0] != round_:
            name = f"{self.cfg.adapter_prefix}-{round_}-{_digest(self.adapter(round_))}"
            engine = self._engine()
            await engine.reload(str(self.adapter(round_).resolve()), name=name)
            self._live = (round_, name)
        return self.engine

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.aclose()
            self.engine = None

    def _engine(self) -> Any:
        if self.engine is None:
            section = ModelSection(name=f"{self.cfg.adapter_prefix}-base", backend="vllm", path=self.source,
                                   enable_lora=True, hourly_usd=self.cfg.hourly_usd, engine_kwargs=self.cfg.engine_kwargs)
            self.engine = build_backend(section, engine=Engine(seed=self.seed, max_lora_rank=self._lora_config().lora_r,
                                                               vllm_api=self.vllm_api), source="[policy]")
        return self.engine
