"""The real-vLLM test tier (make test-vllm): every test here talks to a vLLM process (its CPU build)."""
