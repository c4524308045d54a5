"""Tests for consulpy.filter: Consul's `?filter=` language (go-bexpr v0.1.2).

Expected error strings and match results were checked against go-bexpr v0.1.2 itself.
"""

from __future__ import annotations

import copy
import os
import random

import pytest

from consulpy.filter import MAX_NESTING, Filter, FilterError, compile_filter, filter_items

# Shaped like /v1/health/service/:service entries.
ENTRIES: list[dict] = [
    {
        "Node": {
            "Node": "node-1",
            "Address": "10.0.0.1",
            "Meta": {"env": "prod", "rack key": "r1"},
            "TaggedAddresses": {"lan": "10.0.0.1"},
        },
        "Service": {
            "ID": "web-1",
            "Service": "web",
            "Address": "",
            "Tags": ["primary", "v1"],
            "Meta": {"version": "1.2"},
            "Port": 8080,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Score": 1.5,
        },
        "Checks": [
            {"CheckID": "serfHealth", "Status": "passing", "ServiceName": "", "ServiceTags": []},
            {"CheckID": "service:web-1", "Status": "passing", "ServiceName": "web", "ServiceTags": ["primary", "v1"]},
        ],
    },
    {
        "Node": {"Node": "node-2", "Address": "10.0.0.2", "Meta": {"env": "qa"}, "TaggedAddresses": None},
        "Service": {
            "ID": "web-2",
            "Service": "web",
            "Address": "10.1.1.2",
            "Tags": ["secondary"],
            "Meta": {},
            "Port": 8081,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": True,
            "Score": 0.5,
        },
        "Checks": [
            {"CheckID": "serfHealth", "Status": "passing", "ServiceName": "", "ServiceTags": []},
            {"CheckID": "service:web-2", "Status": "critical", "ServiceName": "web", "ServiceTags": ["secondary"]},
        ],
    },
    {
        "Node": {"Node": "node-3", "Address": "10.0.0.3", "Meta": None, "TaggedAddresses": {}},
        "Service": {
            "ID": "db-1",
            "Service": "db",
            "Address": "",
            "Tags": None,
            "Meta": {"version": "2.0"},
            "Port": 5432,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Score": 0.0,
        },
        "Checks": [],
    },
]


def matching(expression: str, items: list | None = None) -> list[int]:
    compiled = compile_filter(expression)
    return [index for index, item in enumerate(ENTRIES if items is None else items) if compiled.matches(item)]


# -- operators --------------------------------------------------------------------------------------------------


def test_equal_and_not_equal_on_strings() -> None:
    assert matching("Service.ID == `web-1`") == [0]
    assert matching('Service.ID == "web-1"') == [0]
    assert matching('Service.ID != "web-1"') == [1, 2]
    assert matching("Service.Address == ``") == [0, 2]
    assert matching('Service.Address != ""') == [1]


def test_in_and_contains_on_lists_test_membership() -> None:
    assert matching("primary in Service.Tags") == [0]
    assert matching("Service.Tags contains v1") == [0]
    assert matching("primary not in Service.Tags") == [1, 2]
    assert matching("Service.Tags not contains v1") == [1, 2]
    assert matching("prim in Service.Tags") == []


def test_in_and_contains_on_strings_test_substrings() -> None:
    assert matching("Node.Address contains `10.0.0`") == [0, 1, 2]
    assert matching('"0.2" in Node.Address') == [1]
    assert matching('"0.2" not in Node.Address') == [0, 2]
    assert matching("Node.Address not contains `.3`") == [0, 1]


def test_in_and_contains_on_maps_test_keys() -> None:
    assert matching("env in Node.Meta") == [0, 1]
    assert matching("Node.Meta contains env") == [0, 1]
    assert matching("prod in Node.Meta") == []
    assert matching("env not in Node.Meta") == [2]
    assert matching('"rack key" in Node.Meta') == [0]


def test_is_empty_and_is_not_empty() -> None:
    assert matching("Service.Tags is empty") == [2]
    assert matching("Service.Tags is not empty") == [0, 1]
    assert matching("Service.Meta is empty") == [1]
    assert matching("Node.TaggedAddresses is empty") == [1, 2]
    assert matching("Checks is empty") == [2]
    assert matching("Service.Address is empty") == [0, 2]
    assert matching("Service.Address is not empty") == [1]


def test_matches_and_not_matches() -> None:
    assert matching('Service.ID matches "^web-[0-9]+$"') == [0, 1]
    assert matching("Service.ID matches `eb-`") == [0, 1]
    assert matching("Service.ID not matches `^web`") == [2]
    assert matching("Node.Address matches `\\.2$`") == [1]


def test_matches_uses_go_regexp_dialect() -> None:
    def hit(pattern: str, text: str) -> bool:
        return compile_filter(f"Output matches {pattern}").matches({"Output": text})

    assert hit('"ok$"', "ok")
    assert not hit('"ok$"', "ok\n")
    assert hit('"(?m)ok$"', "ok\nnext")
    assert hit('"ok\\\\z"', "ok")
    assert not hit('"ok\\\\z"', "ok\n")
    assert hit('"^[[:digit:]]+$"', "123")
    assert not hit('"^[[:digit:]]+$"', "12a")
    assert hit("`\\Qa.b\\E`", "xa.bx")
    assert not hit("`\\Qa.b\\E`", "axb")
    assert hit("`\\x{41}`", "A")
    assert not hit("`\\d`", "\u0663")


# -- combinations -----------------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert matching("Node.Node == `node-1` or Node.Node == `node-2` and Service.Port == 8080") == [0]
    assert matching("(Node.Node == `node-1` or Node.Node == `node-2`) and Service.Port == 8080") == [0]
    assert matching("Service.Port == 8081 and Node.Node == `node-2` or Node.Node == `node-3`") == [1, 2]
    assert matching("Service.Port == 8081 and (Node.Node == `node-1` or Node.Node == `node-3`)") == []


def test_not_binds_tightest() -> None:
    assert matching("not Node.Node == `node-1` and Service.Service == web") == [1]
    assert matching("not (Node.Node == `node-1` and Service.Service == web)") == [1, 2]
    assert matching("not Node.Node == `node-1` or Node.Node == `node-1`") == [0, 1, 2]
    assert matching("not not Node.Node == `node-1`") == [0]
    assert matching("not not not Node.Node == `node-1`") == [1, 2]


def test_parentheses_and_whitespace() -> None:
    assert matching("(Service.Port == 8080)") == [0]
    assert matching("  ( ( Service.Port==8080 ) )  ") == [0]
    assert matching("Service.Port==8080\n\tor\r\nService.Port == 5432") == [0, 2]
    assert matching("(Node.Node == `node-1`) or (Node.Node == `node-3`)") == [0, 2]


def test_long_chains_and_many_nots() -> None:
    wide = " or ".join(f"Service.Port == {port}" for port in range(5000, 9000))
    assert matching(wide) == [0, 1, 2]
    assert matching("not " * 1001 + "Node.Node == `node-1`") == [1, 2]


# -- values -----------------------------------------------------------------------------------------------------


def test_double_quoted_strings_expand_go_escapes() -> None:
    item = {"Name": "tab\there é A \\ x"}
    assert compile_filter('Name == "tab\\there \\u00e9 \\x41 \\\\ x"').matches(item)
    assert compile_filter('Name == "tab\\there \\303\\251 \\101 \\\\ x"').matches(item)
    assert compile_filter('Name == "tab\\there \\U000000e9 A \\\\ x"').matches(item)


def test_backquoted_strings_are_raw() -> None:
    assert compile_filter("Name == `a\\nb`").matches({"Name": "a\\nb"})
    assert not compile_filter("Name == `a\\nb`").matches({"Name": "a\nb"})
    assert compile_filter("Name == `a\r\nb`").matches({"Name": "a\nb"})


def test_unquoted_values() -> None:
    assert matching("Checks.Status == passing") == [0, 1]
    assert matching("Service.Service == Node.Node") == []
    assert compile_filter("Target == Node.Node").matches({"Target": "Node.Node"})
    assert compile_filter('Target == Node.Meta["x"]').matches({"Target": "Node.Meta.x"})
    assert compile_filter("Version == 1.5").matches({"Version": "1.5"})
    assert compile_filter("Offset == -3").matches({"Offset": "-3"})


def test_values_convert_to_the_integer_type() -> None:
    assert matching("Service.Port == 8080") == [0]
    assert matching('Service.Port == "8080"') == [0]
    assert matching('Service.Port == "0x1f90"') == [0]
    assert matching('Service.Port == "0o17620"') == [0]
    assert matching('Service.Port == "8_080"') == [0]
    assert matching("Service.Port != 8080") == [1, 2]
    assert matching("Service.Weights.Passing == 1") == [0, 1, 2]
    assert compile_filter("Offset == -3").matches({"Offset": -3})


def test_values_convert_to_bool_and_float_types() -> None:
    assert matching("Service.EnableTagOverride == true") == [1]
    assert matching("Service.EnableTagOverride == True") == [1]
    assert matching("Service.EnableTagOverride == 1") == [1]
    assert matching("Service.EnableTagOverride == false") == [0, 2]
    assert matching("Service.EnableTagOverride != t") == [0, 2]
    assert matching("Service.Score == 1.5") == [0]
    assert matching('Service.Score == "15e-1"') == [0]
    assert matching("Service.Score == 0") == [2]


def test_in_on_a_list_converts_per_element() -> None:
    item = {"Ports": [80, 443], "Flags": [True], "Mixed": ["80", 81, 1.5, None, {"a": 1}]}
    assert compile_filter("80 in Ports").matches(item)
    assert compile_filter('"0x50" in Ports').matches(item)
    assert not compile_filter("8 in Ports").matches(item)
    assert compile_filter("true in Flags").matches(item)
    assert compile_filter("81 in Mixed and 1.5 in Mixed and 80 in Mixed").matches(item)
    assert not compile_filter("a in Mixed").matches(item)


def test_unconvertible_or_unsupported_comparisons_never_match() -> None:
    # go-bexpr refuses to create these filters for the corresponding Go types; here they match nothing.
    for expression in (
        "Service.Port == abc",
        "Service.Port != abc",
        "Service.Port == 8080.0",
        "Service.EnableTagOverride == yes",
        "Service.EnableTagOverride != yes",
        "Service.Tags == primary",
        "Checks != primary",
        "Service.Port matches 80",
        "Service.Port not matches 80",
        "80 in Service.Port",
        "80 not in Service.Port",
        "Service.Port is empty",
        "Service.Port is not empty",
        "Service.Meta == x",
        "Service.ID.Nested == x",
        "Service.ID.Nested != x",
    ):
        assert matching(expression) == [], expression


# -- selectors --------------------------------------------------------------------------------------------------


def test_index_syntax() -> None:
    assert matching('Node.Meta["rack key"] == r1') == [0]
    assert matching("Node.Meta[`rack key`] == r1") == [0]
    assert matching('Node.Meta[ "env" ] == qa') == [1]
    assert matching('Node["Meta"]["env"] == prod') == [0]
    assert matching('Node.Meta["env"] != prod') == [1, 2]
    assert compile_filter('Meta["a.b"] == x').matches({"Meta": {"a.b": "x"}})
    assert compile_filter('Meta["with-dash"].inner == x').matches({"Meta": {"with-dash": {"inner": "x"}}})


def test_selectors_are_case_sensitive() -> None:
    assert matching("Service.Port == 8080") == [0]
    assert matching("service.port == 8080") == []
    assert matching("Node.Meta.Env == prod") == []
    assert matching("Node.Meta.env == Prod") == []


def test_selector_through_a_list_matches_if_any_element_does() -> None:
    assert matching("Checks.Status == passing") == [0, 1]
    assert matching("Checks.Status == critical") == [1]
    assert matching("Checks.Status != passing") == [1]  # "some check is not passing"
    assert matching("not Checks.Status != passing") == [0, 2]  # "no check is other than passing"
    assert matching("Checks.CheckID not matches serf") == [0, 1]
    assert matching("web in Checks.ServiceName") == [0, 1]
    assert matching("Checks.ServiceTags contains v1") == [0]
    assert matching("Checks.ServiceTags is empty") == [0, 1]


def test_selector_through_an_empty_list_matches_nothing() -> None:
    for expression in (
        "Checks.Status == passing",
        "Checks.Status != passing",
        "Checks.Status is empty",
        "Checks.Status is not empty",
        "x not in Checks.ServiceTags",
        "Checks.Status not matches x",
    ):
        assert 2 not in matching(expression), expression


def test_nested_lists_are_flattened() -> None:
    item = {"Groups": [[{"Name": "a"}], [{"Name": "b"}, {"Name": "c"}]]}
    assert compile_filter("Groups.Name == c").matches(item)
    assert not compile_filter("Groups.Name == d").matches(item)


def test_missing_keys_follow_go_map_semantics() -> None:
    item = {"Meta": {"present": "x"}, "Null": None}
    expectations = {
        "{} == x": False,
        "{} != x": True,
        "x in {}": False,
        "x not in {}": True,
        "{} contains x": False,
        "{} not contains x": True,
        "{} is empty": True,
        "{} is not empty": False,
        "{} matches x": True,  # go-bexpr v0.1.2 reports a match here; reproduced on purpose
        "{} not matches x": True,
    }
    for selector in ("Meta.absent", "Absent", "Absent.deeper", "Null", "Null.deeper", 'Meta["absent"]'):
        for template, expected in expectations.items():
            expression = template.format(selector)
            assert compile_filter(expression).matches(item) is expected, expression


def test_null_maps_and_lists_behave_like_empty_ones_at_the_end_of_a_selector() -> None:
    assert matching("Node.Meta is empty") == [2]
    assert matching("Node.Meta.env != prod") == [1, 2]
    assert matching("v1 not in Service.Tags") == [1, 2]


def test_non_object_items() -> None:
    compiled = compile_filter("Name == x")
    for item in (None, "x", 5, [], [{"Name": "x"}], {"Name": None}):
        assert isinstance(compiled.matches(item), bool)
    assert compiled.matches([{"Name": "x"}])
    assert compiled.matches({"Name": "x"})


# -- Consul's documented examples (website/content/api-docs/features/filtering.mdx) -------------------------------


def test_consul_documentation_examples() -> None:
    agent_services = [
        {"ID": "redis1", "Tags": ["primary", "production"], "Meta": {"env": "production", "foo": "bar"}, "Port": 1234},
        {
            "ID": "redis2",
            "Tags": ["secondary", "production"],
            "Meta": {"env": "production", "foo": "bar"},
            "Port": 1235,
        },
        {"ID": "redis3", "Tags": ["primary", "qa"], "Meta": {"env": "qa"}, "Port": 1234},
    ]
    assert [s["ID"] for s in filter_items('Meta.env == "qa"', agent_services)] == ["redis3"]
    catalog = [
        {"Node": "node-1", "NodeMeta": {"os": "darwin"}, "ServiceMeta": {"foo": "1"}},
        {"Node": "node-2", "NodeMeta": {"os": "linux"}, "ServiceMeta": {}},
    ]
    assert [n["Node"] for n in filter_items('NodeMeta.os == "linux"', catalog)] == ["node-2"]
    assert [n["Node"] for n in filter_items('ServiceMeta["foo"] == "1"', catalog)] == ["node-1"]
    checks = [{"CheckID": "node-health", "ServiceName": ""}, {"CheckID": "svc-web-health", "ServiceName": "web"}]
    assert [c["CheckID"] for c in filter_items('ServiceName != ""', checks)] == ["svc-web-health"]


# -- API ----------------------------------------------------------------------------------------------------------


def test_filter_items() -> None:
    items = copy.deepcopy(ENTRIES)
    assert filter_items(None, items) is items
    assert filter_items("", items) is items
    assert filter_items("Service.Service == web", items) == items[:2]
    assert filter_items("Service.Service == nothing", items) == []
    assert items == ENTRIES
    with pytest.raises(FilterError):
        filter_items("Service.Service ==", items)


def test_compile_filter_returns_a_reusable_filter() -> None:
    compiled = compile_filter("Service.Port == 8080")
    assert isinstance(compiled, Filter)
    assert compiled.expression == "Service.Port == 8080"
    assert [compiled.matches(item) for item in ENTRIES] == [True, False, False]
    assert [compiled.matches(item) for item in ENTRIES] == [True, False, False]


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no match found"):
        compile_filter("")


# -- errors -------------------------------------------------------------------------------------------------------

GO_BEXPR_ERRORS = [
    ("", '1:1 (0): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
    ("   ", '1:4 (3): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
    ("Foo == ", '1:8 (7): no match found, expected: "-", "0", "\\"", "`", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
    (
        "Foo = bar",
        '1:5 (4): no match found, expected: "!=", "==", "contains", "in", "is", "matches", "not" or [ \\t\\r\\n]',
    ),
    ("Foo == bar and", "1:15 (14): no match found, expected: [ \\t\\r\\n]"),
    ("Foo == bar)", '1:11 (10): no match found, expected: ".", "[", [ \\t\\r\\n], [a-zA-Z0-9_] or EOF'),
    ("(Foo == bar", '1:12 (11): rule "grouping": Unmatched parentheses'),
    ("Foo == bar and (Baz == 1", '1:25 (24): rule "grouping": Unmatched parentheses'),
    ("Foo == 1x", '1:9 (8): rule "number": Invalid number literal'),
    ("Foo == 01", '1:9 (8): rule "number": Invalid number literal'),
    ("Foo == 1.", '1:9 (8): rule "number": Invalid number literal'),
    ("Service.Port == 0x50", '1:18 (17): rule "number": Invalid number literal'),
    ("Foo == -", '1:9 (8): no match found, expected: "0" or [1-9]'),
    ("Service.ID == web-1", '1:18 (17): no match found, expected: ".", "[", [ \\t\\r\\n], [a-zA-Z0-9_] or EOF'),
    ("Node.Address contains 10.0.0", '1:27 (26): rule "number": Invalid number literal'),
    ('Foo == "abc', '1:12 (11): rule "string": Unterminated string literal'),
    ("Foo == `abc", '1:12 (11): rule "string": Unterminated string literal'),
    ('Foo == "a\\qb"', '1:8 (7): rule "string": invalid syntax'),
    ('Foo == "a\\"b"', '1:8 (7): rule "string": invalid syntax'),
    ('Foo == "\\400"', '1:8 (7): rule "string": invalid syntax'),
    ('Meta["x', '1:8 (7): rule "string": Unterminated string literal\n1:6 (5): rule "index": Invalid index'),
    ("Meta[x] == 1", '1:6 (5): rule "index": Invalid index'),
    ('Meta["x" == 1', '1:10 (9): rule "index": Unclosed index expression'),
    ("x in 1", '1:6 (5): rule "match": Invalid selector'),
    ("not(Foo == bar)", '1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]'),
    ("(Foo == bar)and(Baz == 1)", "1:13 (12): no match found, expected: [ \\t\\r\\n] or EOF"),
    ("Foo is emptyish", "1:13 (12): no match found, expected: [ \\t\\r\\n] or EOF"),
    ("Foo.1 == 2", "1:5 (4): no match found, expected: [a-zA-Z]"),
    ("Meta.my-key == 1", '1:8 (7): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]'),
    ("Foo == bar\nand Baz", '2:8 (18): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]'),
    ("Foo == é", '1:8 (7): no match found, expected: "-", "0", "\\"", "`", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
    ("é == 1", '1:1 (0): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'),
]


@pytest.mark.parametrize(("expression", "message"), GO_BEXPR_ERRORS)
def test_syntax_errors_match_go_bexpr(expression: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(expression)
    assert str(caught.value) == message


def test_invalid_regular_expressions_are_rejected_at_compile_time() -> None:
    for pattern in ('"("', '"[a-"', '"a**"', '"\\\\pL"', "`[[:nope:]]`", "`a(?i)b`"):
        with pytest.raises(FilterError, match=r"^Failed to compile regular expression "):
            compile_filter(f"Name matches {pattern}")
    with pytest.raises(FilterError, match=r'^Failed to compile regular expression "\('):
        compile_filter('Name == x or Name not matches "("')


def test_syntax_errors_take_precedence_over_regex_errors() -> None:
    with pytest.raises(FilterError, match="no match found"):
        compile_filter('Name matches "(" and')


def test_nesting_limit() -> None:
    nested = "(" * MAX_NESTING + "A == 1" + ")" * MAX_NESTING
    assert compile_filter(nested).matches({"A": 1})
    with pytest.raises(FilterError, match="nested more than"):
        compile_filter("(" + nested + ")")
    with pytest.raises(FilterError):
        compile_filter("(" * 10_000)


def test_unbalanced_parentheses_fail_fast() -> None:
    with pytest.raises(FilterError, match="Unmatched parentheses"):
        compile_filter("(" * (MAX_NESTING - 1) + "A == 1")


# -- fuzzing --------------------------------------------------------------------------------------------------------

_FUZZ_SELECTORS = [
    "Node.Node",
    "Node.Meta",
    "Node.Meta.env",
    'Node.Meta["rack key"]',
    "Service.Tags",
    "Service.Port",
    "Service.EnableTagOverride",
    "Service.Score",
    "Checks.Status",
    "Checks.ServiceTags",
    "Checks",
    "Missing.Key",
]
_FUZZ_VALUES = [
    "passing",
    '"web"',
    "`v1`",
    "8080",
    "-1",
    "1.5",
    "true",
    '"0x1f90"',
    '"a\\tb"',
    '"^w.*$"',
    '"("',
    "Node.Node",
]
_FUZZ_TOKENS = [
    *' \t\n()[]"`.=!-_019aZé€😀\\\x00\udc80',
    "and",
    "or",
    "not",
    "in",
    "is",
    "empty",
    "==",
    "!=",
    "contains",
    "matches",
    "\\x41",
    "\\u00e9",
    "\\400",
    "0.",
    "01",
    '["k"]',
    "[`k`",
    "((",
    "))",
]


def _fuzz_match(rng: random.Random) -> str:
    selector = rng.choice(_FUZZ_SELECTORS)
    roll = rng.random()
    if roll < 0.6:
        operator = rng.choice(["==", "!=", "contains", "not contains", "matches", "not matches"])
        return f"{selector} {operator} {rng.choice(_FUZZ_VALUES)}"
    if roll < 0.8:
        return f"{selector} is {rng.choice(['', 'not '])}empty"
    return f"{rng.choice(_FUZZ_VALUES)} {rng.choice(['in', 'not in'])} {selector}"


def _fuzz_expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return _fuzz_match(rng)
    if roll < 0.65:
        keyword = rng.choice(["and", "or"])
        return f"{_fuzz_expression(rng, depth + 1)} {keyword} {_fuzz_expression(rng, depth + 1)}"
    if roll < 0.8:
        return f"not {_fuzz_expression(rng, depth + 1)}"
    return f"({_fuzz_expression(rng, depth + 1)})"


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(chars))
        roll = rng.random()
        if roll < 0.35 and chars:
            del chars[min(at, len(chars) - 1)]
        elif roll < 0.7 or not chars:
            chars.insert(at, rng.choice(_FUZZ_TOKENS))
        else:
            chars[min(at, len(chars) - 1)] = rng.choice(_FUZZ_TOKENS)
    return "".join(chars)


def test_fuzzed_expressions_raise_only_filter_error() -> None:
    seed = int(os.environ.get("FILTER_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    compiled_count = 0
    for _ in range(2000):
        roll = rng.random()
        if roll < 0.3:
            expression = _fuzz_expression(rng)
        elif roll < 0.8:
            expression = _mutate(rng, _fuzz_expression(rng))
        else:
            expression = "".join(rng.choice(_FUZZ_TOKENS) for _ in range(rng.randint(0, 30)))
        try:
            compiled = compile_filter(expression)
        except FilterError:
            continue
        except Exception as exc:  # pragma: no cover - reported with the seed to reproduce
            pytest.fail(f"FILTER_FUZZ_SEED={seed}: {expression!r} raised {exc!r}")
        compiled_count += 1
        for item in ENTRIES:
            try:
                assert isinstance(compiled.matches(item), bool)
            except Exception as exc:  # pragma: no cover - reported with the seed to reproduce
                pytest.fail(f"FILTER_FUZZ_SEED={seed}: evaluating {expression!r} raised {exc!r}")
    assert compiled_count > 100, f"FILTER_FUZZ_SEED={seed}: the generator produced too few valid expressions"
