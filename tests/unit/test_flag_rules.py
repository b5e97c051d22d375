"""The variant-rule language of multi-variant flags (veltrix.flag_rules, flag_variants).

The examples are AWS AppConfig's documented operators, each with a context that
matches and one that does not; the fuzz tests check that any text, and any
combination of tokens, either parses and evaluates to a boolean or raises the typed
:class:`veltrix.errors.RuleError` (never another exception, never a traceback).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veltrix.errors import RuleError
from veltrix.flag_rules import MAX_DEPTH, MAX_RULE_LENGTH, parse, split_bucket
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
    # Timestamps (W3C forms) compare as instants, with strings and datetimes.
    ("(gt $signup 2024-01)", {"signup": "2024-01-01T00:00:01Z"}, {"signup": "2023-12-31"}),
    (
        "(eq $at 2012-03-04T05:06:07-08:00)",
        {"at": "2012-03-04T13:06:07Z"},
        {"at": "2012-03-04T05:06:07Z"},
    ),
    (
        "(lt $at 2024-01-01T00:00:00.5+00:00)",
        {"at": datetime(2024, 1, 1, tzinfo=UTC)},
        {"at": datetime(2024, 1, 1, 0, 0, 1)},  # naive: UTC
    ),
    ("(in $day [2024-01-01, 2024-01-02])", {"day": "2024-01-02T00:00Z"}, {"day": "2024-01-03"}),
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
    assert parse("(gt $at 2024-01)").evaluate({"at": 1_800_000_000}) is False  # not a time
    assert parse("(gt $at 2024-01)").evaluate({"at": "next tuesday"}) is False
    assert parse('(eq $at "2024-01")').evaluate({"at": "2024-01-01"}) is False  # strings


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
        "(eq $a 2024-13)",
        "(eq $a 2024-02-30)",
        "(eq $a 2024-01-01T24:00Z)",
        "(eq $a 2024-01-01T10:00)",  # a time of day needs its zone
        "(eq $a 2024-01-01T10:00+24:00)",
        '(split by::"user" pct::20)',
        "(split by::$a pct::101)",
        "(split by::$a pct::-1)",
        '(split by::$a pct::"20")',
        "(split by::$a pct::20 seed::1)",
        "(split by::$a pct::20 pct::30)",
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


USERS = [f"user-{i}" for i in range(10_000)]


def _share(rule: str, users: list[str] = USERS) -> float:
    parsed = parse(rule)
    return sum(parsed.evaluate({"u": user}) for user in users) / len(users)


def test_split_matches_its_percentage_of_users() -> None:
    assert abs(_share("(split by::$u pct::20)") - 0.20) < 0.015
    assert abs(_share("(split by::$u pct::2.5)") - 0.025) < 0.006
    assert _share("(split by::$u pct::0)") == 0
    assert _share("(split by::$u pct::100)") == 1


def test_split_buckets_are_the_documented_hash_and_never_move() -> None:
    """The promise that a user keeps their answer across releases: the bucket of a
    known value is pinned (SHA-256 of seed, NUL, value; first 8 bytes / 2**64 * 100)."""
    assert split_bucket("user-1", "checkout") == pytest.approx(3.999887188261688)
    assert split_bucket("42") == pytest.approx(7.33549226999415)
    rule = parse('(split by::$u pct::4 seed::"checkout")')
    assert rule.evaluate({"u": "user-1"}) is True
    assert parse('(split by::$u pct::3.9 seed::"checkout")').evaluate({"u": "user-1"}) is False
    # Integers hash as their decimal text; other kinds and absences never match.
    rule = parse("(split by::$u pct::7.4)")
    assert rule.evaluate({"u": 42}) is rule.evaluate({"u": "42"}) is True
    for value in (True, 42.0, ["42"], None):
        assert rule.evaluate({"u": value}) is False
    assert rule.evaluate({}) is False


def test_split_variants_share_buckets_as_appconfig_documents() -> None:
    """AppConfig's examples: A pct 20 then B pct 20 gives B nobody; A 20 then B 25
    gives B the next 5%. Another seed picks other users (independently: ~4% overlap)."""
    stored = [
        {"name": "A", "rule": "(split by::$u pct::20)", "value": "a"},
        {"name": "B", "rule": "(split by::$u pct::25)", "value": "b"},
        {"name": "C", "value": "c"},
    ]
    variants = parse_variants(stored)
    counts = {"A": 0, "B": 0, "C": 0}
    for user in USERS:
        counts[select_variant(variants, {"u": user})[0].name] += 1
    assert abs(counts["A"] / 10_000 - 0.20) < 0.015
    assert abs(counts["B"] / 10_000 - 0.05) < 0.01
    stored[1]["rule"] = "(split by::$u pct::20)"
    variants = parse_variants(stored)
    assert not any(select_variant(variants, {"u": u})[0].name == "B" for u in USERS)
    first = {u for u in USERS if parse("(split by::$u pct::20)").evaluate({"u": u})}
    other = {u for u in USERS if parse('(split by::$u pct::20 seed::"x")').evaluate({"u": u})}
    assert abs(len(first & other) / 10_000 - 0.04) < 0.01


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
        "$a", "$b", "in::", "pattern::", "key::", "by::", "pct::", "seed::", '"x"', '"a.*"',
        '"("', "1", "-2", "3.5", "1e400", "true", "false", '"\\', "::", "$", "2024-01",
        "2012-03-04T05:06:07.25-08:00", "2024-02-30",
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
        st.datetimes(),
        st.sampled_from(["2024-01", "2024-01-01T00:00:00Z", "2023-12-31T23:00-02:00"]),
    ),
    max_size=3,
)


def _parse_and_evaluate(text: str, context: dict[str, Any]) -> None:
    try:
        rule = parse(text)
    except RuleError:
        return
    assert isinstance(rule.evaluate(context), bool)


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
    chosen, matched = select_variant(variants, context)
    assert chosen in variants and isinstance(matched, bool)
