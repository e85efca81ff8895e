"""Requester headers: every connector tells its upstream the caller's role and access basis.

The e2e suite (`tests/e2e/test_upstream_headers.py`) shows it over the wire for all five
sources; these pin the pure header builders of the municipal and SFM connectors.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from connectors.base import AccessBasis, FetchRequest, Requester
from connectors.medication.connector import request_headers as sfm_headers
from connectors.model import Category
from connectors.municipal.connector import build_headers as municipal_headers

NIN = "09014412759"
PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"


def _request(basis: AccessBasis, role: str | None = "SP") -> FetchRequest:
    return FetchRequest(NIN, frozenset({Category.MEDICATIONS}), access_basis=basis,
                        requester=Requester(hpr_number="9144902", role_code=role),
                        request_id="req-7")


@pytest.mark.parametrize("basis", list(AccessBasis))
def test_municipal_stores_are_told_the_access_basis(basis: AccessBasis) -> None:
    headers = municipal_headers(_request(basis))
    assert headers["nhn-access-basis"] == basis.value
    assert json.loads(unquote(headers["nhn-user-role"])) == {"system": PROFESSION, "code": "SP"}


def test_sfm_is_told_the_role_in_the_header_kjernejournal_uses() -> None:
    headers = sfm_headers(_request(AccessBasis.SAMTYKKE))
    assert json.loads(unquote(headers["nhn-user-role"])) == {"system": PROFESSION, "code": "SP"}
    assert headers["x-request-id"] == "req-7"
    assert not any(NIN in value for value in headers.values())


def test_a_caller_without_a_profession_sends_no_role() -> None:
    assert "nhn-user-role" not in sfm_headers(_request(AccessBasis.UNNTAK, role=None))
    assert "nhn-user-role" not in municipal_headers(_request(AccessBasis.UNNTAK, role=None))
