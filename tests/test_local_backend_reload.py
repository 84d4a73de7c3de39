"""The local backend between rounds: reload an in-memory pair, a checkpoint directory, or a LoRA adapter."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from agents.llm.local import LocalBackend
from agents.llm.types import SamplingParams
from tests.tiny_model import chat_ids, greedy_ids, save_tiny, tiny_pair, use_one_thread

use_one_thread()
ASK = [{"role": "user", "content": "what is 2+2?"}]
GREEDY = SamplingParams(max_tokens=10, temperature=0)


def reference(model, tokenizer) -> str:
    return tokenizer.decode(greedy_ids(model, chat_ids(tokenizer, ASK), 10, tokenizer.eos_token_id),
                            skip_special_tokens=True)


def make_adapter(base_dir, out_dir, seed):
    """A LoRA adapter over the checkpoint in `base_dir`, with non-zero B so that it changes the outputs."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(out_dir)
    return peft_model.eval()


async def test_reload_a_pair_and_a_checkpoint_dir(tmp_path):
    model, tokenizer = tiny_pair(seed=0)
    llm = LocalBackend(model, tokenizer, name="round-0")
    before = (await llm.chat(ASK, GREEDY)).choices[0].text
    assert before == reference(model, tokenizer)

    other, other_tok = tiny_pair(seed=1)
    await llm.reload((other, other_tok), name="round-1")
    assert (await llm.chat(ASK, GREEDY)).choices[0].text == reference(other, other_tok) != before
    assert llm.model == "round-1"

    checkpoint = save_tiny(str(tmp_path / "ckpt"), seed=2)
    await llm.reload(checkpoint)
    expected = reference(*tiny_pair(seed=2))
    assert (await llm.chat(ASK, GREEDY)).choices[0].text == expected
    with pytest.raises(FileNotFoundError):
        await llm.reload(str(tmp_path / "missing"))
    assert (await llm.chat(ASK, GREEDY)).choices[0].text == expected  # a failed reload keeps serving
    await llm.aclose()


async def test_reload_lora_adapters_round_after_round(tmp_path):
    base_dir = save_tiny(str(tmp_path / "base"), seed=0)
    llm = LocalBackend.from_path(base_dir, name="tiny", device="cpu")
    base_text = (await llm.chat(ASK, GREEDY)).choices[0].text
    tokenizer = llm.tokenizer

    first = make_adapter(base_dir, str(tmp_path / "round1"), seed=1)
    await llm.reload(str(tmp_path / "round1"))
    round1 = (await llm.chat(ASK, GREEDY)).choices[0].text
    assert round1 == reference(first, tokenizer) != base_text

    second = make_adapter(base_dir, str(tmp_path / "round2"), seed=2)
    await llm.reload(str(tmp_path / "round2"))
    assert (await llm.chat(ASK, GREEDY)).choices[0].text == reference(second, tokenizer) != round1
    assert len(llm.hf_model.peft_config) == 1  # the previous round's adapter was dropped
    await llm.aclose()

    direct = LocalBackend.from_path(str(tmp_path / "round2"), device="cpu")  # adapter dir over its local base
    assert (await direct.chat(ASK, GREEDY)).choices[0].text == reference(second, tokenizer)
    await direct.aclose()
