"""Agents: LLM access (one async chat interface, several backends) and agentic workflows.

Usable alone for budget-capped calls: `agents.llm` has the backends, retries, price table and budget
ledger. Imports nothing else of ours (not `verifiers`, `trainer` or `selfplay`): tools and checks are
injected as plain callables.
"""
