"""Price table: shipped entries, overrides, dated names, missing prices, costs computed by hand."""

import pytest

from agents.llm.types import Usage
from agents.money.prices import ModelPrice, PriceError, PriceTable


def test_shipped_table_has_version_and_common_models():
    table = PriceTable.shipped()
    assert table.version
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "claude-3-5-sonnet", "llama-3-70b"):
        assert table.lookup(name).output > 0


def test_dated_snapshot_and_provider_prefix_resolve():
    table = PriceTable.shipped()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.lookup("gpt-4o-mini")
    assert table.lookup("openai/gpt-4o") == table.lookup("gpt-4o")


def test_unknown_model_is_an_error_that_says_how_to_add_it():
    with pytest.raises(PriceError) as info:
        PriceTable.shipped().lookup("my-finetune")
    assert '[prices."my-finetune"]' in str(info.value)


def test_user_override_replaces_shipped_entry():
    table = PriceTable.shipped().with_overrides({"gpt-4o": {"input": 1.0, "output": 2.0}})
    assert table.lookup("gpt-4o").input == 1.0 and table.version.endswith("+user")


def test_an_entry_without_prices_is_refused_never_zero():
    with pytest.raises(PriceError):
        PriceTable.shipped().with_overrides({"x": {}})
    with pytest.raises(PriceError):
        PriceTable.shipped().with_overrides({"x": {"input": 1.0}})


def test_cost_by_hand():
    price = ModelPrice(input=2.0, cached_input=0.5, output=8.0)
    usage = Usage(prompt_tokens=1000, cached_prompt_tokens=400, completion_tokens=250)
    # 600 fresh * 2 + 400 cached * 0.5 + 250 * 8 = 1200 + 200 + 2000 = 3400 per 1M
    assert price.cost(usage) == pytest.approx(3400 / 1e6)
    assert price.worst_case(1000, 250) == pytest.approx((2000 + 2000) / 1e6)


def test_hardware_price_from_hourly_cost_and_throughput():
    price = ModelPrice(hourly_usd=3.6, tokens_per_second=1000)  # $0.001 per second, 1000 tok/s
    assert price.cost(Usage(prompt_tokens=0, completion_tokens=1_000_000)) == pytest.approx(1.0)
