"""Built-in tiny models: a byte-level tokenizer with a chat template, and small Llama/Qwen configs.

What it is for: the demo and the tests need a real `transformers` causal LM that trains in seconds on a CPU and
formats chat exactly like a real model does (same `apply_chat_template`, eos at the end of each assistant turn).
The tokenizer is a standard `PreTrainedTokenizerFast` (byte level: any UTF-8 text round-trips, 256 byte tokens +
4 specials), so `AutoTokenizer.from_pretrained(dir)` loads it back like any other.
What it does not do: download anything, or pretend to be a useful language model (weights are random init).
"""

from __future__ import annotations

from typing import Any

PAD, BOS, EOS, IM_START = "<|pad|>", "<|bos|>", "<|im_end|>", "<|im_start|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")

# A compact chat template with one special token per role (as Phi-3 / Zephyr-style templates do): the eos token
# closes every turn, so generation stops at the end of the assistant turn. Five tokens of overhead per exchange
# instead of ChatML's ~20 keep the tiny models' sequences short, which is most of their training cost on a CPU.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

# name -> (architecture, hyper-parameters). Sizes: tiny-* ~1.1M parameters, micro-llama ~0.15M (tests).
TINY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-llama": ("llama", dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4)),
    "tiny-qwen": ("qwen2", dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4)),
    "micro-llama": ("llama", dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)),
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the alphabet of the ByteLevel pre-tokenizer)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def build_tiny_tokenizer():
    """A byte-level `PreTrainedTokenizerFast`: token id == byte value for 0..255, then pad, bos, eos, im_start, role tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                                for tok in (PAD, BOS, EOS, IM_START, *ROLE_TOKENS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        chat_template=CHAT_TEMPLATE, model_max_length=1024, padding_side="right",
    )


def build_tiny_model(name: str, tokenizer, seed: int = 0):
    """A randomly initialised model of the named tiny config, sized to `tokenizer` (deterministic given `seed`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    arch, sizes = TINY_CONFIGS[name]
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[arch]
    config = config_cls(
        vocab_size=len(tokenizer), max_position_embeddings=1024, tie_word_embeddings=True,
        num_key_value_heads=sizes["num_attention_heads"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **sizes,
    )
    devices = torch.random.fork_rng(devices=[])  # seed the init without disturbing the caller's RNG stream
    with devices:
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
