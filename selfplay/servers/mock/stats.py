"""Counters the mock server exposes at GET /mock/stats (and clears at POST /mock/reset).

What it is for: letting tests assert what the client actually did: how many requests, which faults were
injected, how many completions were served, that no identical request was answered twice
(`replies_by_key` / `duplicate_replies`), and the peak number of requests in flight.
Shape of `snapshot()`:
    {"requests": 12,                       # every request to /v1/*
     "by_endpoint": {"chat.completions": 10, "completions": 1, "models": 1},
     "faults": {"429": 1, "500": 0, "timeout": 0, "malformed": 1, "truncate": 0},
     "faults_total": 2,
     "errors": {"bad_request": 0, "n_too_large": 0, "no_rule_matched": 0, "script_error": 0},
     "completions": 9,                     # successful completion responses
     "choices": 18,                        # choices in them (n summed)
     "usage": {"prompt_tokens": 120, "completion_tokens": 300},
     "rules": {"add": 7, "default": 2},    # answered prompts per matched rule name
     "replies_by_key": {"<request key>": 1, ...},   # successful responses per identical request
     "duplicate_replies": 0,               # sum over keys of (count - 1)
     "in_flight": 0, "max_in_flight": 8}
The request key of a response is also sent in its `x-mock-request-key` header.
What it does NOT do: persist anything; all of it lives in the server's memory, touched only from its loop.
"""

from __future__ import annotations

from collections import Counter

from selfplay.servers.mock.faults import FAULT_KINDS

ERROR_KINDS = ("bad_request", "n_too_large", "no_rule_matched", "script_error")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_endpoint: Counter[str] = Counter()
        self.faults: Counter[str] = Counter({k: 0 for k in FAULT_KINDS})
        self.errors: Counter[str] = Counter({k: 0 for k in ERROR_KINDS})
        self.completions = 0
        self.choices = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.rules: Counter[str] = Counter()
        self.replies_by_key: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    def request(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1

    def enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def success(self, key: str, rules: list[str], choices: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.completions += 1
        self.choices += choices
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.rules.update(rules)  # one per prompt: a completions request may carry several
        self.replies_by_key[key] += 1

    def snapshot(self) -> dict:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "errors": dict(self.errors),
            "completions": self.completions,
            "choices": self.choices,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "rules": dict(self.rules),
            "replies_by_key": dict(self.replies_by_key),
            "duplicate_replies": sum(c - 1 for c in self.replies_by_key.values() if c > 1),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }
