"""Operational logs and request ids carry no identity numbers, even when a client tries."""

from __future__ import annotations

import logging
import sys

import pytest

from gateway.graphql import _request_id
from gateway.logs import JsonFormatter, redact
from gateway.settings import Settings, SettingsError


@pytest.mark.parametrize(("offered", "kept"), [
    ("abc-123_x.y", True),
    ("", False),
    ("14033841389", False),
    ("req-14033841389-x", False),
    ("has space", False),
    ("x" * 65, False),
    ('{"nin":1}', False),
])
def test_a_client_request_id_is_kept_only_when_it_is_a_plain_token(offered: str, kept: bool) -> None:
    rid = _request_id(offered)
    assert (rid == offered) is kept
    assert len(rid) <= 64
    assert "14033841389" not in rid


def test_an_exception_is_logged_by_type_and_stack_without_its_message() -> None:
    record = logging.LogRecord("kilde.test", logging.ERROR, __file__, 1, "failed", None, None)
    secret = "14033841389 Arne Hvilested"
    try:
        raise KeyError(secret)
    except KeyError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert '"exception":"KeyError"' in line
    assert "14033841389" not in line
    assert "Hvilested" not in line


def test_redact_masks_anything_shaped_like_an_identity_number() -> None:
    assert redact("/graphql/14033841389/x") == "/graphql/***********/x"


def test_retention_below_one_day_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="KILDE_AUDIT__RETENTION_DAYS"):
        Settings.from_env({"KILDE_AUDIT__RETENTION_DAYS": "0"})
