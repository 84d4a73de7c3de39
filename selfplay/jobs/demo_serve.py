"""`selfplay demo --serve`: the demo's self-improvement arm sampling from a model server, a LoRA adapter per round.

What it is for: showing the served-policy path (`[policy] mode = "served"`, selfplay.policy.served) end to end on
a CPU. The cold start is the demo's own (`selfplay.jobs.demo.demo_config`, round 0 only, in `OUT/cold_start`); a
server process on 127.0.0.1 (a free port) serves that checkpoint as its base model: `selfplay serve` (`--server
selfplay`, the default) or a real vLLM (`--server vllm`: `selfplay.policy.vllm_process`, run from `.venv-vllm`); the self-improvement arm trains a LoRA adapter each round in this process, publishes it over the
runtime LoRA API and samples and evaluates through the server; the server is stopped at the end (also on
errors). The control arm is the demo's, local, from the same cold-start checkpoint, with the same optimizer
steps per round. It writes the same `demo.json` (plus `"served": true`) and a report.
What it does not do: install vLLM (`make venv-vllm`), or tune anything per seed or per server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from selfplay.jobs.demo import comparison_table, demo_config
from selfplay.core.errors import UserError
from selfplay.jobs.loop import DONE, RunJob
from selfplay.pipeline.report import markdown
from selfplay.config.run import RunConfig
from selfplay.core.store import RunStore
from selfplay.core.files import write_json
from selfplay.policy.vllm_process import VLLMServer, require_vllm

BASE_NAME = "cold-start"
# LoRA on the 1.1M-parameter tiny model: a high rank (half the hidden size) on every linear layer, and a higher
# learning rate than full fine-tuning (the demo's 1e-3), so that 100 steps per round move it as far.
LORA = {"lora": True, "lora_r": 64, "lora_alpha": 128, "lora_target_modules": "all-linear", "lr": 2e-3}


async def run_demo_serve(out: str | Path, *, seed: int = 0, rounds: int = 4, quick: bool = False,
                         progress: Any = None, server: str = "selfplay") -> dict[str, Any]:
    out = Path(out)
    launcher = SERVERS[server]  # KeyError is the CLI's to prevent (argparse choices)
    if server == "vllm":  # before the cold start spends minutes
        try:
            require_vllm()
        except RuntimeError as exc:
            raise UserError(f"--server vllm: {exc}") from None
    cold_dir, improve_dir, control_dir = out / "cold_start", out / "self_improve", out / "control"
    cold = await RunJob(demo_config(seed, arm="self_improve", rounds=0, quick=quick), cold_dir,
                        title="demo: cold start", progress=progress).run()
    base = cold_dir / "checkpoints" / "round-0"
    with launcher(base, BASE_NAME, log=out / "serve.log") as url:
        improve = await RunJob(served_config(seed, rounds, quick, base, url), improve_dir,
                               title="demo: self-improvement (served, LoRA)", progress=progress).run()
    steps = [int(r.get("train", {}).get("steps", 0) or 0) for r in improve[1:]]
    _share_cold_start(base, control_dir, cold[0])
    control = await RunJob(demo_config(seed, arm="control", rounds=rounds, control_steps=steps, quick=quick),
                           control_dir, title="demo: control (seed set only)", progress=progress).run()
    result = {"seed": seed, "served": True, "server": server, "cold_start": improve[0]["eval_pass@1"],
              "self_improve": [r["eval_pass@1"] for r in improve[1:]],
              "control": [r["eval_pass@1"] for r in control[1:]],
              "self_improve_pass@k": [r["eval_pass@k"] for r in improve],
              "control_pass@k": [r["eval_pass@k"] for r in control],
              "train_steps_per_round": steps,
              "seconds": round(sum(r.get("seconds", 0) for r in cold + improve + control[1:]), 1)}
    write_json(result, out / "demo.json")
    table = comparison_table(improve, control)
    (out / "report.md").write_text("\n".join([
        "# selfplay demo --serve", "", f"The self-improvement arm samples from {SERVER_NAMES[server]} (a LoRA adapter "
        "published per round); the control arm is local.", "", "```", table, "```", "",
        markdown(improve, "self-improvement arm (served)"), "", markdown(control, "control arm (same steps on the "
                                                                              "seed set)")]))
    return {"result": result, "self_improve": improve, "control": control}


def served_config(seed: int, rounds: int, quick: bool, base: Path, url: str):
    """The demo's self-improvement config with its policy served: the cold-start checkpoint is the base model."""
    config = demo_config(seed, arm="self_improve", rounds=rounds, quick=quick).model_dump(mode="json")
    config["model"]["path"] = str(base)
    config["policy"] = {"mode": "served", "url": url, "base_model": BASE_NAME, "hourly_usd": config["local"]["hourly_usd"]}
    config["train"]["cold_start_epochs"] = 0  # the base already is the cold start (round 0: a zero adapter)
    config["train"]["cold_start_steps"] = None
    config["train"]["settings"] = {**config["train"]["settings"], **LORA}
    return RunConfig.model_validate(config)


def _share_cold_start(base: Path, control_dir: Path, round0: dict[str, Any]) -> None:
    """The control arm starts from the cold-start checkpoint (copied, not retrained), with its round-0 record."""
    target = control_dir / "checkpoints" / "round-0"
    if not (target / "config.json").is_file():
        shutil.copytree(base, target, dirs_exist_ok=True)
    with RunStore(control_dir) as store:
        if not any(r["round"] == 0 and r["phase"] == DONE for r in store.get_rounds()):
            store.put_round(0, DONE, {**{k: v for k, v in round0.items() if k not in ("round", "phase", "arm")},
                                      "arm": "control", "checkpoint": str(target)})


class ServeProcess:
    """`selfplay serve --model CHECKPOINT` on 127.0.0.1 and a free port, stopped on exit; yields its /v1 URL."""

    def __init__(self, checkpoint: Path, name: str, *, log: Path, timeout_s: float = 120.0) -> None:
        self.checkpoint, self.name, self.log, self.timeout_s = checkpoint, name, log, timeout_s
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "selfplay", "serve", "--model", str(self.checkpoint), "--served-model-name",
             self.name, "--host", "127.0.0.1", "--port", "0", "--threads", "1", "--max-batch-rows", "512"],
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True, env=env)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on " in line:  # then keep its stdout drained, so it never blocks on a full pipe
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return line.split("listening on ")[1].split()[0]
            if self.proc.poll() is not None:
                break
        self.__exit__()
        raise UserError(f"selfplay serve did not start (see {self.log})")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class VLLMProcess:
    """A real vLLM server (`selfplay.policy.vllm_process.VLLMServer`) over `checkpoint`, stopped on exit; yields its
    /v1 URL. A start that fails is a UserError quoting vLLM's log."""

    def __init__(self, checkpoint: Path, name: str, *, log: Path) -> None:
        self.server = VLLMServer(str(checkpoint), log, served_name=name)

    def __enter__(self) -> str:
        try:
            self.server.start()
        except RuntimeError as exc:
            raise UserError(f"--server vllm: {exc}") from None
        return self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


SERVERS = {"selfplay": ServeProcess, "vllm": VLLMProcess}  # `--server`: what serves the self-improvement arm
SERVER_NAMES = {"selfplay": "`selfplay serve`", "vllm": "a real vLLM server"}


def run_cli(args: Any) -> int:
    """`selfplay demo --serve`: run, then print the table, the headline and where the files are."""
    import asyncio

    from selfplay.progress import PhaseProgress, progress_enabled

    if getattr(args, "arms", "sft,control") not in ("sft,control", None):
        raise UserError(f"--arms {args.arms}: --serve runs the demo's self-improvement (SFT) arm served, beside the "
                        "control arm; remove --arms, or remove --serve to compare other arms")
    started = time.monotonic()
    with PhaseProgress(enabled=progress_enabled() and not args.no_progress) as progress:
        outcome = asyncio.run(run_demo_serve(args.out, seed=args.seed, rounds=args.rounds, quick=args.quick,
                                             progress=progress, server=args.server))
    print(comparison_table(outcome["self_improve"], outcome["control"]))
    result = outcome["result"]
    print(f"cold start {result['cold_start']:.3f} -> self-improvement (served) {result['self_improve'][-1]:.3f} "
          f"vs control {result['control'][-1]:.3f} (held-out pass@1), {time.monotonic() - started:.0f} s")
    print(f"report: {args.out}/report.md; figures: {args.out}/demo.json; server log: {args.out}/serve.log")
    return 0
