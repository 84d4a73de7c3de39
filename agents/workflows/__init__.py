"""Agentic workflows that turn a prompt into K candidate trajectories on any `LLM` backend.

Each workflow is a small module. Tools and checks are injected callables: `agents` imports nothing
else of ours.
"""

from agents.workflows.trajectory import Trajectory

__all__ = ["Trajectory"]
