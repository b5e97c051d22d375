"""The variant-rule language of multi-variant flags (veltrix.flag_rules, flag_variants).

The examples are AWS AppConfig's documented operators, each with a context that
matches and one that does not; the fuzz tests check that any text, and any
combination of tokens, either parses and evaluates to a boolean or raises the typed
:class:`veltrix.errors.RuleError` (never another exception, never a traceback).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veltrix.errors import RuleError, RuleNotEvaluatedError
from veltrix.flag_rules import MAX_DEPTH, MAX_RULE_LENGTH, parse
from veltrix.flag_variants import parse_variants, select_variant

DOCUMENTED = [
    ('(eq $state "Virginia")', {"state": "Virginia"}, {"state": "Ohio"}),
    ("(gt $age 65)", {"age": 66}, {"age": 65}),
    ("(gte $age 65)", {"age": 65}, {"age": 64.5}),
    ("(lt $age 65)", {"age": 18}, {"age": 65}),
    ("(lte $age 65)", {"age": 65.0}, {"age": 66}),
    ('(and (eq $state "Virginia") (gt $age 65))', {"state": "Virginia", "age": 70}, {"age": 70}),
    ('(or (eq $state "Virginia") (gt $age 65))', {"age": 70}, {"state": "Ohio", "age": 30}),
    ('(not (eq $state "Virginia"))', {"state": "Ohio"}, {"state": "Virginia"}),
    ('(begins_with $state "A")', {"state": "Alaska"}, {"state": "Ohio"}),
    ('(ends_with $email "amazon.com")', {"email": "a@amazon.com"}, {"email": "a@b.org"}),
    ('(contains $promoCode "WIN")', {"promoCode": "XWINX"}, {"promoCode": "LOSE"}),
    ('(in $userId ["123", "456"])', {"userId": "456"}, {"userId": "789"}),
    ('(matches in::$greeting pattern::"h.*y")', {"greeting": "happy"}, {"greeting": "sad"}),
    ('(exists key::"country")', {"country": "US"}, {"city": "Paris"}),
    ("(eq $beta true)", {"beta": True}, {"beta": False}),
    ("(eq $ratio 1.234e-5)", {"ratio": 1.234e-5}, {"ratio": 1}),
    ("(eq $n -7)", {"n": -7.0}, {"n": "-7"}),
    ('(eq $quote "say \\"hi\\"")', {"quote": 'say "hi"'}, {"quote": "say hi"}),
]


@pytest.mark.parametrize(("text", "matching", "other"), DOCUMENTED)
def test_documented_operators(text: str, matching: dict[str, Any], other: dict[str, Any]) -> None:
    rule = parse(text)
    assert rule.evaluate(matching) is True
    assert rule.evaluate(other) is False


def test_missing_or_mistyped_context_values_do_not_match() -> None:
    assert parse("(gt $age 65)").evaluate({}) is False
    assert parse("(gt $age 65)").evaluate({"age": "70"}) is False
    assert parse('(begins_with $n "1")').evaluate({"n": 10}) is False
    assert parse("(gt $flag false)").evaluate({"flag": True}) is False  # booleans are unordered
    assert parse("(in $tier $allowed)").evaluate({"tier": "gold", "allowed": ["gold"]}) is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "eq $a 1",
        "(eq $a 1",
        "(eq $a 1))",
        "(unknown $a 1)",
        "(eq $a)",
        "(not $a)",
        "(and (eq $a 1))",
        "(in $a 1)",
        '(matches in::$a pattern::"(")',
        '(matches $a "x")',
        "(exists key::$a)",
        '(eq $a "unterminated)',
        '(eq $a "bad \\n escape")',
        "(eq $a 2012-03-04T05:06:07-08:00)",
        "(eq $a 99999999999999999999)",
        "(eq $ 1)",
        "(eq $a [1, (eq $b 1)])",
        "(" * (MAX_DEPTH + 1) + ")" * (MAX_DEPTH + 1),
        "(eq $a " + "1" * MAX_RULE_LENGTH + ")",
    ],
)
def test_malformed_rules_raise_the_typed_error(text: str) -> None:
    with pytest.raises(RuleError):
        parse(text)


def test_split_parses_but_is_not_evaluated() -> None:
    rule = parse("(split by::$uniqueId pct::20)")
    with pytest.raises(RuleNotEvaluatedError, match="split"):
        rule.evaluate({"uniqueId": "u-1"})
    with pytest.raises(RuleError):
        parse("(split pct::20)")


def test_errors_never_quote_the_rule_or_a_value() -> None:
    for text in ['(eq $pin "hunter2"', "(hunter2 $a 1)", "(eq $a hunter2)"]:
        with pytest.raises(RuleError) as info:
            parse(text)
        assert "hunter2" not in str(info.value)


def test_errors_chain_no_cause_holding_the_text() -> None:
    """JSON and regular-expression errors keep the text they failed on (``doc``,
    ``pattern``); the typed error does not chain them."""
    for raise_it in (
        lambda: parse_variants('[{"name": "hunter2"'),
        lambda: parse('(matches in::$a pattern::"hunter2(")'),
    ):
        with pytest.raises(RuleError) as info:
            raise_it()
        assert "hunter2" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_variants_are_chosen_in_order_and_the_default_is_last() -> None:
    variants = parse_variants(
        '[{"name": "beta", "rule": "(ends_with $accountId \\"123\\")", "enabled": true},'
        ' {"name": "eu", "rule": "(eq $region \\"eu\\")", "enabled": true, "value": 2},'
        ' {"name": "Default", "enabled": false}]'
    )
    chosen, matched = select_variant(variants, {"accountId": "9123", "region": "eu"})
    assert (chosen.name, matched) == ("beta", True)
    chosen, matched = select_variant(variants, {"region": "eu"})
    assert (chosen.name, matched, chosen.values["value"]) == ("eu", True, 2)
    chosen, matched = select_variant(variants, {})
    assert (chosen.name, matched) == ("Default", False)


@pytest.mark.parametrize(
    "stored",
    [
        "not json",
        "[]",
        "{}",
        '[{"name": "a", "rule": "(eq $a 1)"}]',  # the default (last) has a rule
        '[{"name": "a"}, {"name": "b"}]',  # a non-default without a rule
        '[{"name": "a", "rule": "(eq $a 1)"}, {"name": "a"}]',  # a name used twice
        '[{"name": ""}]',
        '[{"name": "a", "rule": "(bogus)"}, {"name": "b"}]',
        "[1]",
    ],
)
def test_malformed_variant_lists_raise_the_typed_error(stored: str) -> None:
    with pytest.raises(RuleError):
        parse_variants(stored)


TOKENS = st.sampled_from(
    [
        "(", ")", "[", "]", ",", " ", "eq", "gt", "gte", "lt", "lte", "and", "or", "not",
        "in", "matches", "exists", "split", "begins_with", "ends_with", "contains",
        "$a", "$b", "in::", "pattern::", "key::", "by::", "pct::", '"x"', '"a.*"', '"("',
        "1", "-2", "3.5", "1e400", "true", "false", '"\\', "::", "$",
    ]
)  # fmt: skip
CONTEXT = st.dictionaries(
    st.sampled_from(["a", "b", "targetingKey"]),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.lists(st.text(max_size=3), max_size=3),
    ),
    max_size=3,
)


def _parse_and_evaluate(text: str, context: dict[str, Any]) -> None:
    try:
        rule = parse(text)
    except RuleError:
        return
    try:
        assert isinstance(rule.evaluate(context), bool)
    except RuleNotEvaluatedError:
        assert rule.operator == "split" or "split" in text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), CONTEXT)
def test_any_text_parses_or_raises_the_typed_error(text: str, context: dict[str, Any]) -> None:
    _parse_and_evaluate(text, context)


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=40), CONTEXT)
def test_token_soup_parses_or_raises_the_typed_error(
    tokens: list[str], context: dict[str, Any]
) -> None:
    _parse_and_evaluate("(" + " ".join(tokens), context)
    _parse_and_evaluate("".join(tokens), context)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["name", "rule", "enabled", "value"]),
                                st.one_of(st.text(max_size=12), st.booleans(), st.none()),
                                max_size=4), max_size=4), CONTEXT)  # fmt: skip
def test_any_variant_list_parses_or_raises_the_typed_error(
    stored: list[dict[str, Any]], context: dict[str, Any]
) -> None:
    try:
        variants = parse_variants(stored)
    except RuleError:
        return
    try:
        chosen, matched = select_variant(variants, context)
    except RuleNotEvaluatedError:
        return
    assert chosen in variants and isinstance(matched, bool)
