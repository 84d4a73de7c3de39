"""Steps scale with the data (max_epochs caps max_steps), and the RPO term holds DPO's chosen log-probs up."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from tests.test_trainer_dpo import pairs  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.dpo import train_dpo  # noqa: E402
from trainer.models import load_model  # noqa: E402


def test_max_epochs_caps_a_fixed_step_count_on_little_data():
    model, tokenizer = load_model("micro-llama")
    metrics = train_dpo(model, tokenizer, pairs(3, seed=0), TrainConfig(lr=1e-3, max_steps=100, max_epochs=2,
                                                                         batch_size=8, progress="off"))
    assert metrics["steps"] == 2  # one batch per epoch, two epochs: not 100 steps on 3 pairs
    metrics = train_dpo(model, tokenizer, pairs(3, seed=0), TrainConfig(lr=1e-3, max_steps=3, batch_size=8,
                                                                         progress="off"))
    assert metrics["steps"] == 3  # without the cap, max_steps as before


def test_rpo_term_keeps_chosen_log_probs_from_falling():
    deltas = {}
    for alpha in (0.0, 1.0):
        model, tokenizer = load_model("micro-llama")
        config = TrainConfig(lr=3e-3, epochs=4, batch_size=8, beta=0.1, rpo_alpha=alpha, log_every=1,
                             progress="off")
        metrics = train_dpo(model, tokenizer, pairs(24, seed=0), config)
        deltas[alpha] = metrics["chosen_logp_delta"]
        assert metrics["rewards/accuracy"] > 0.9
    assert deltas[1.0] > deltas[0.0] + 1.0, deltas


def test_algorithm_defaults_replace_shared_settings_and_own_keys_win():
    from selfplay.jobs.algorithms import get

    settings = {"lr": 1e-3, "batch_size": 64, "max_steps": 100, "grpo": {"lr": 5e-5}}
    sft, dpo, grpo = (get(a).train_config(settings) for a in ("sft", "dpo", "grpo"))
    assert sft.lr == 1e-3 and sft.max_epochs is None  # the cold start / SFT rounds: as configured
    # DPO keeps the shared (SFT) lr: with the RPO term it is stable there (docs/trainer.md, DPO)
    assert (dpo.lr, dpo.beta, dpo.rpo_alpha, dpo.max_epochs, dpo.batch_size) == (1e-3, 0.1, 1.0, 10.0, 64)
    assert grpo.lr == 5e-5 and grpo.max_epochs == 20.0 and not grpo.normalize_std and grpo.max_steps == 100
    assert grpo.anchor_coef == 1.0 and grpo.min_lr_ratio == 1.0 and grpo.warmup_steps == 10
    # docs/trainer.md "GRPO that learns at every seed": weak negatives, no upper clip, 4 micro-batches per step
    assert (grpo.negative_advantage_scale, grpo.clip_eps, grpo.clip_eps_high, grpo.grad_accum) == (0.1, 0.2, 10.0, 4)
    assert grpo.batch_size == 64  # the user's micro-batch (memory) is kept; the step is 4 of them
    with pytest.raises(ValueError, match="settings.dpo"):
        get("dpo").train_config({"dpo": 3})


def test_run_config_checks_per_algorithm_settings_by_name(tmp_path):
    from selfplay.core.errors import UserError
    from selfplay.config.run import load_run_config
    from tests.test_cli_run import CONFIG

    base = CONFIG.format(budget="").replace("[train]", "[train]\nalgorithm = \"dpo\"")
    path = tmp_path / "run.toml"
    path.write_text(base.replace("epochs = 1 }", "epochs = 1, dpo = { lr = 1e-4, beta = 1.0 } }"))
    assert load_run_config(path).train.settings["dpo"] == {"lr": 1e-4, "beta": 1.0}
    path.write_text(base.replace("epochs = 1 }", "epochs = 1, dpo = { betta = 1.0 } }"))
    with pytest.raises(UserError, match="did you mean beta"):
        load_run_config(path)
