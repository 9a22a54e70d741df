"""REPORT_EMAILS: comma-separated addresses, a malformed one refused in one line naming the variable."""

from __future__ import annotations

import pytest

from deia.config import ConfigError, Env


def test_report_emails_are_a_comma_separated_list_empty_by_default():
    assert Env({}).emails("REPORT_EMAILS") == []
    assert Env({"REPORT_EMAILS": " a@example.com, ops@example.org ,"}).emails("REPORT_EMAILS") == [
        "a@example.com",
        "ops@example.org",
    ]


@pytest.mark.parametrize("bad", ["oncall", "a@", "@example.com", "a@b@c", "a b@example.com"])
def test_a_malformed_address_stops_start_up_with_one_line(bad):
    with pytest.raises(ConfigError) as caught:
        Env({"REPORT_EMAILS": f"ok@example.com,{bad}"}).emails("REPORT_EMAILS")
    assert str(caught.value) == f"REPORT_EMAILS: not a mail address: {bad!r}"
