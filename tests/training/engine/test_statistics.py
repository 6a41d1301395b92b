"""The verdict's arithmetic: intervals that exist only where they mean something, and a judge that decides
nothing until it has beaten chance on human preferences."""

from __future__ import annotations

import json

from training.engine import statistics


def test_a_single_held_out_item_gives_no_interval_and_no_verdict_but_valid_json():
    figure = statistics.paired_figure("x", "X", unit="reward", better="higher", new=[2.0], base=[1.0])
    assert figure["new_interval"] is None and figure["change_interval"] is None
    assert figure["verdict"] == "no clear change"
    rate = statistics.rate_figure("win_rate", "Win rate", outcomes=[0.5], against=0.5)
    assert rate["new_interval"] is None and rate["verdict"] == "no clear change"
    summary = statistics.summarize([figure, rate], reward_model_trusted=True)
    json.dumps({"figures": [figure, rate], "summary": summary}, allow_nan=False)  # raises on NaN or infinity
    assert summary["headline"] == "win_rate" and summary["reason"] == "Win rate: 50% against its base (1 item)."


def test_a_win_rate_under_an_unchecked_reward_model_decides_nothing():
    wins = statistics.rate_figure("win_rate", "Win rate", outcomes=[1.0] * 30 + [0.0] * 10, against=0.5)
    assert wins["verdict"] == "better"
    unchecked = statistics.summarize([wins], reward_model_trusted=None)
    assert unchecked["verdict"] == "not measured" and "not checked" in unchecked["warnings"][0]
    untrusted = statistics.summarize([wins], reward_model_trusted=False)
    assert untrusted["verdict"] == "not measured" and "no better than chance" in untrusted["warnings"][0]
    assert statistics.summarize([wins], reward_model_trusted=True)["verdict"] == "better"


def test_few_items_all_one_way_are_not_called_a_change():
    four = statistics.paired_figure("x", "X", unit="share", better="higher", new=[1.0] * 4, base=[0.0] * 4)
    assert four["verdict"] == "no clear change"
    many = statistics.paired_figure("x", "X", unit="share", better="higher", new=[1.0] * 12, base=[0.0] * 12)
    assert many["verdict"] == "better"


def test_lower_is_better_for_perplexity():
    def ratio(nll, count):
        import math

        return math.exp(sum(nll) / sum(count))

    tokens = [10.0] * 20
    worse = statistics.paired_figure(
        "perplexity", "P", unit="perplexity", better="lower", new=[30.0] * 20, base=[20.0] * 20,
        statistic=ratio, weights=(tokens, tokens),
    )  # fmt: skip
    assert worse["new"] > worse["base"] and worse["verdict"] == "worse"
    summary = statistics.summarize([worse], reward_model_trusted=None)
    assert summary["verdict"] == "worse" and "Forgetting" in summary["warnings"][0]
