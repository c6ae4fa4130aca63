"""Argument predicates: pure functions, one test per behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from apps.approvals.predicates import InvalidCondition, evaluate, reaches_outside, validate_conditions

DOMAINS = ["acme.test"]


def holds(condition: dict[str, Any], arguments: dict[str, Any], domains: list[str] | None = None) -> bool:
    matched, results = evaluate(validate_conditions([condition]), arguments, workspace_domains=domains or DOMAINS)
    assert results and results[0].explanation  # always explained
    return matched


class TestOutsideDomains:
    def test_recipient_outside_the_workspace_domains_matches(self) -> None:
        assert holds({"path": "to", "op": "outside_domains"}, {"to": ["sarah@customer.example"]})

    def test_recipients_all_inside_do_not_match(self) -> None:
        assert not holds({"path": "to", "op": "outside_domains"}, {"to": ["a@acme.test", "b@ACME.test"]})

    def test_one_outsider_among_insiders_matches(self) -> None:
        assert holds({"path": "to", "op": "outside_domains"}, {"to": ["a@acme.test", "x@evil.example"]})

    def test_subdomains_are_inside_but_lookalikes_are_not(self) -> None:
        assert not holds({"path": "to", "op": "outside_domains"}, {"to": "ops@mail.acme.test"})
        assert holds({"path": "to", "op": "outside_domains"}, {"to": "ops@evilacme.test"})

    def test_display_names_are_parsed(self) -> None:
        assert holds({"path": "to", "op": "outside_domains"}, {"to": "Sarah Connor <sarah@customer.example>"})

    def test_without_a_path_every_address_anywhere_counts(self) -> None:
        arguments = {"to": ["a@acme.test"], "cc": ["leak@rival.example"], "nested": {"bcc": []}}
        assert holds({"path": "", "op": "outside_domains"}, arguments)

    def test_extra_inside_domains_in_the_condition(self) -> None:
        condition = {"path": "to", "op": "outside_domains", "value": ["partner.example"]}
        assert not holds(condition, {"to": "bob@partner.example"})

    def test_workspace_without_domains_treats_everyone_as_outside(self) -> None:
        matched, _ = evaluate(
            validate_conditions([{"path": "to", "op": "outside_domains"}]), {"to": "a@acme.test"}, workspace_domains=[]
        )
        assert matched

    def test_no_address_does_not_match(self) -> None:
        assert not holds({"path": "to", "op": "outside_domains"}, {"to": "nobody"})


class TestComparisons:
    def test_env_equals_prod(self) -> None:
        assert holds({"path": "env", "op": "eq", "value": "prod"}, {"env": "prod"})
        assert not holds({"path": "env", "op": "eq", "value": "prod"}, {"env": "staging"})

    def test_ne_holds_when_missing(self) -> None:
        assert holds({"path": "env", "op": "ne", "value": "prod"}, {})
        assert not holds({"path": "env", "op": "ne", "value": "prod"}, {"env": "prod"})

    def test_amount_above_a_value(self) -> None:
        condition = {"path": "amount", "op": "gt", "value": 1000}
        assert holds(condition, {"amount": 1000.5})
        assert not holds(condition, {"amount": 1000})
        assert holds(condition, {"amount": "2,500.00"})  # numeric strings compare as numbers

    def test_non_numbers_never_match_a_numeric_comparison(self) -> None:
        condition = {"path": "amount", "op": "gt", "value": 1}
        assert not holds(condition, {"amount": "lots"})
        assert not holds(condition, {"amount": True})
        assert not holds(condition, {})

    def test_gte_lt_lte(self) -> None:
        assert holds({"path": "n", "op": "gte", "value": 5}, {"n": 5})
        assert holds({"path": "n", "op": "lt", "value": 5}, {"n": 4})
        assert holds({"path": "n", "op": "lte", "value": 5}, {"n": 5})

    def test_in_and_not_in(self) -> None:
        assert holds({"path": "env", "op": "in", "value": ["prod", "live"]}, {"env": "live"})
        assert holds({"path": "env", "op": "not_in", "value": ["prod", "live"]}, {"env": "dev"})

    def test_contains_on_strings_and_lists(self) -> None:
        assert holds({"path": "body", "op": "contains", "value": "refund"}, {"body": "a full refund"})
        assert holds({"path": "tags", "op": "contains", "value": "vip"}, {"tags": ["vip", "eu"]})

    def test_matches_is_a_regular_expression_search(self) -> None:
        assert holds({"path": "table", "op": "matches", "value": "^(drop|delete)_"}, {"table": "drop_users"})
        assert not holds({"path": "table", "op": "matches", "value": "^(drop|delete)_"}, {"table": "users"})

    def test_exists_and_absent(self) -> None:
        assert holds({"path": "cc", "op": "exists"}, {"cc": []})
        assert holds({"path": "cc", "op": "absent"}, {})


class TestPaths:
    def test_dotted_paths_and_list_indexes(self) -> None:
        arguments = {"payload": {"items": [{"price": 10}, {"price": 900}]}}
        assert holds({"path": "payload.items.1.price", "op": "gt", "value": 500}, arguments)

    def test_star_fans_out_over_a_list(self) -> None:
        arguments = {"recipients": [{"email": "a@acme.test"}, {"email": "b@other.example"}]}
        assert holds({"path": "recipients.*.email", "op": "outside_domains"}, arguments)

    def test_a_list_value_matches_if_any_element_does(self) -> None:
        assert holds({"path": "amounts", "op": "gt", "value": 100}, {"amounts": [5, 500]})


class TestValidation:
    @pytest.mark.parametrize(
        "conditions",
        [
            "not a list",
            [{"path": "x", "op": "bogus"}],
            [{"path": "", "op": "eq", "value": 1}],
            [{"path": "x", "op": "gt", "value": "many"}],
            [{"path": "x", "op": "in", "value": "prod"}],
            [{"path": "x", "op": "matches", "value": "("}],
            [{"path": "x", "op": "eq"}],
            [{"path": "x", "op": "exists", "value": 1}],
            [{"path": "x..y", "op": "exists"}],
            [{"path": "x", "op": "eq", "value": 1, "extra": True}],
        ],
    )
    def test_bad_conditions_are_rejected_with_a_reason(self, conditions: Any) -> None:
        with pytest.raises(InvalidCondition):
            validate_conditions(conditions)

    def test_all_conditions_must_hold_and_evaluation_stops_at_the_first_miss(self) -> None:
        conditions = validate_conditions(
            [{"path": "env", "op": "eq", "value": "prod"}, {"path": "amount", "op": "gt", "value": 10}]
        )
        matched, results = evaluate(conditions, {"env": "dev", "amount": 99}, workspace_domains=DOMAINS)
        assert not matched and len(results) == 1
        matched, results = evaluate(conditions, {"env": "prod", "amount": 99}, workspace_domains=DOMAINS)
        assert matched and len(results) == 2


def test_reaches_outside_finds_addresses_and_urls() -> None:
    assert reaches_outside({"url": "https://api.rival.example/x", "to": "a@acme.test"}, DOMAINS) == [
        "api.rival.example"
    ]
    assert reaches_outside({"url": "https://crm.acme.test/x"}, DOMAINS) == []
