"""Mock server pieces without a server: script loading and errors, matching, templates, tokens, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfplay.core.errors import UserError
from selfplay.servers.mock import default_script, load_script, script_from_data
from selfplay.servers.mock.faults import FAULT_KINDS, FaultPlanner, FaultRates
from selfplay.servers.mock.matching import chat_conversation, choose_reply, find_rule, render_reply, selection_key
from selfplay.servers.mock.templates import Groups, render
from selfplay.servers.mock.tokens import apply_stop, chat_prompt_tokens, count_tokens, finish_choice, truncate

DATA = Path(__file__).parent / "data"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def answer(script, messages, model="policy", i=0):
    rule, groups = find_rule(script, chat_conversation(messages, model))
    key = selection_key(0, None, model, messages)
    content, calls = render_reply(choose_reply(rule, i, key), groups, key, i)
    return rule.name, content, calls


# ---- script errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('[[rules]]\nmatch = "("\nreply = "x"\n', "rules[0] at line 1: `match` is not a valid regex"),
    ('[[rules]]\nreply = "a"\n\n[[rules]]\nname = "b"\nmach = "x"\nreply = "y"\n',
     "rules[1] ('b') at line 4: unknown key(s) ['mach']"),
    ('[[rules]]\nmatch = "x"\n', "give exactly one of `reply`"),
    ('[[rules]]\nmatch = "(a)"\nreply = "{ad:1}"\n', "unknown computed field {ad:...}"),
    ('[[rules]]\nmatch = "(a)"\nreply = "{add:1,2}"\n', "references group '2'"),
    ('[[rules]]\nrole = "bot"\nreply = "x"\n', "`role` must be one of"),
    ('[[rules]]\nturn = -1\nreply = "x"\n', "`turn` must be a non-negative integer"),
    ('[default]\nmatch = "x"\nreply = "y"\n', "[default]: the fallback takes no conditions"),
    ('models = []\n[default]\nreply = "y"\n', "`models` must be a non-empty list"),
    ('rules = []\n', "no rules and no [default]"),
    ('[[rules]\nreply = "x"\n', "invalid TOML"),
])
def test_a_malformed_script_is_a_user_error_naming_file_rule_and_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_script(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_json_scripts_and_json_errors_name_the_line(tmp_path):
    good = tmp_path / "s.json"
    good.write_text('{"rules": [{"contains": "hi", "reply": "hello"}]}')
    assert answer(load_script(good), user("hi there"))[1] == "hello"
    bad = tmp_path / "b.json"
    bad.write_text('{"rules": [\n  {"reply": "x"},\n]}')
    with pytest.raises(UserError, match=r"b\.json: invalid JSON at line 3"):
        load_script(bad)
    with pytest.raises(UserError, match="cannot read"):
        load_script(tmp_path / "missing.toml")


# ---- matching and templates ---------------------------------------------------------------------

def test_default_script_answers_arithmetic_with_boxed_results():
    script = default_script()
    name, content, _ = answer(script, user("What is 12 + 30?"), model="m")
    assert name == "add" and content.endswith(r"The answer is \boxed{42}.")
    assert answer(script, user("Tell me a joke"), model="m")[0] == "default"


def test_agent_script_tool_calls_turns_feedback_and_models():
    script = load_script(DATA / "mock_agent.toml")
    name, content, calls = answer(script, user("Compute 6 * 7 please"))
    assert name == "call-calculator" and content == "Let me use the calculator."
    assert calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")
    assert calls[0]["function"] == {"name": "calculator", "arguments": '{"expression": "6 * 7"}'}
    convo = user("Compute 6 * 7 please") + [
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "result: 42"}]
    assert answer(script, convo)[1] == r"The calculator says 42, so the answer is \boxed{42}."
    first = user("What is 9 - 4?")
    assert answer(script, first)[1].endswith(r"\boxed{13}.")
    refine = first + [{"role": "assistant", "content": "13"}, *user("That is incorrect, try again.")]
    assert answer(script, refine)[1].endswith(r"9 - 4 = 5. The answer is \boxed{5}.")
    assert answer(script, user(r"Final: \boxed{5}"), model="judge")[1] == "The answer 5 is correct. VERDICT: PASS"


def test_cycle_pick_and_hash_pick_are_pure_functions_of_the_request():
    script = load_script(DATA / "mock_agent.toml")
    replies = [answer(script, user("What is 2 + 3?"), i=i)[1] for i in range(4)]
    assert replies == [r"2 + 3 = 5. \boxed{5}", r"Adding: \boxed{5}", r"Hmm, \boxed{6}", r"2 + 3 = 5. \boxed{5}"]
    mul = default_script()
    picks = [answer(mul, user("What is 6 * 7?"), model="m", i=i)[1] for i in range(40)]
    assert picks == [answer(mul, user("What is 6 * 7?"), model="m", i=i)[1] for i in range(40)]
    assert len(set(picks)) == 4  # all four replies show up over 40 choices


def test_templates_leave_unknown_braces_literal_and_compute_exactly():
    groups = Groups(["x", "7", "2"], {"a": "10"})
    assert render(r"\boxed{{add:1,2}} \frac{x}{y} {5} {a}", groups) == r"\boxed{9} \frac{x}{y} {5} 10"
    assert render("{div:1,2} {div:2,1} {sub:2,a} {max:1,=100} {mul:1,2}", groups) == "3.5 2/7 -8 100 14"


def test_script_from_data_accepts_the_file_shape():
    script = script_from_data({"rules": [{"match": r"(\d+)", "reply": "{1}!"}]})
    assert answer(script, user("n=5"))[1] == "5!"


# ---- tokens -------------------------------------------------------------------------------------

def test_token_rule_is_words_and_punctuation():
    assert count_tokens("What is 2+3?") == 6
    assert count_tokens("") == 0
    assert chat_prompt_tokens(user("What is 2+3?"), None, lambda c: c) == 3 + 4 + 6
    assert truncate("one, two three", 2) == "one,"
    assert apply_stop("a b STOP c", ["X", "STOP"]) == ("a b ", True)
    assert finish_choice("a b c d", [], None, 2, None) == ("a b", [], "length")
    assert finish_choice("a b\n\nc", [], "\n\n", 10, None) == ("a b", [], "stop")


# ---- faults -------------------------------------------------------------------------------------

def test_faults_are_deterministic_per_seed_key_and_attempt_and_capped():
    rates = FaultRates({kind: 0.19 for kind in FAULT_KINDS})  # 95% faults
    runs = []
    for _ in range(2):
        planner = FaultPlanner(rates, seed=7, max_consecutive=3)
        runs.append([[planner.decide(f"k{k}") for _ in range(8)] for k in range(50)])
    assert runs[0] == runs[1]
    for attempts in runs[0]:
        streak = 0
        for fault in attempts:
            streak = streak + 1 if fault else 0
            assert streak <= 3
    other = FaultPlanner(rates, seed=8)
    assert [[other.decide(f"k{k}") for _ in range(8)] for k in range(50)] != runs[0]


def test_fault_rates_are_validated():
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRates({"404": 0.1})
    with pytest.raises(ValueError, match="sum to"):
        FaultRates({"429": 0.6, "500": 0.6})
    FaultRates({"429": 0.5, "500": 0.5})  # a sum of exactly 1 is allowed: the cap still lets retries through
