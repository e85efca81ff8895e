"""Emergency-only agreements: as data (policy file, KILDE_AGREEMENTS), off unless the
municipality turns them on, and only for an emergency with a stated reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError
from policies import (
    Agreement,
    PurposeOfUse,
    allowed_municipalities,
    emergency_agreement_providers,
    emergency_municipalities,
    load_rules,
)
from tests.policies.people import citizen, clinician

TRONDHEIM = clinician(municipality="5001", purpose_of_use=PurposeOfUse.ETREAT)
REASON = "Bevisstløs, trenger behandlingsavklaring"


def test_emergency_agreements_are_off_by_default_and_kept_apart_from_normal_ones() -> None:
    rules = load_rules(agreements=[("0301", "5001", "emergency"), ("4601", "5001")])
    assert rules.emergency_agreements is False
    assert Agreement("0301", "5001", use="emergency") in rules.agreements
    assert allowed_municipalities(TRONDHEIM, rules=rules, tenants=()) == {"5001", "4601"}
    assert emergency_municipalities(TRONDHEIM, rules=rules, emergency_reason=REASON) == set()


def test_a_policy_file_turns_them_on_and_they_need_a_reason(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[border]\nemergency_agreements = true\n\n[[agreements]]\n'
                      'provider = "0301"\nconsumer = "5001"\nuse = "emergency"\n')
    rules = load_rules(str(policy))
    assert rules.emergency_agreements is True
    assert emergency_municipalities(TRONDHEIM, rules=rules, emergency_reason=REASON) == {"0301"}
    assert emergency_municipalities(TRONDHEIM, rules=rules, emergency_reason="  ") == set()
    treat = replace(TRONDHEIM, purpose_of_use=PurposeOfUse.TREAT)
    assert emergency_municipalities(treat, rules=rules, emergency_reason=REASON) == set()
    assert emergency_agreement_providers(treat, rules=rules) == {"0301"}
    assert emergency_agreement_providers(citizen(), rules=rules) == set()
    # an emergency-only agreement is never a normal one
    assert allowed_municipalities(TRONDHEIM, rules=rules, tenants=()) == {"5001"}


@pytest.mark.parametrize(("text", "key"), [
    ('[border]\nemergency_agreements = "yes"\n', "border.emergency_agreements"),
    ('[border]\nacross = true\n', "border.across"),
    ('[[agreements]]\nprovider = "0301"\nconsumer = "5001"\nuse = "sometimes"\n', "agreements"),
])
def test_a_bad_border_setting_fails_the_start_naming_the_key(tmp_path: Path, text: str,
                                                             key: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_rules(str(policy))


def test_kilde_agreements_takes_an_emergency_use() -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo",
                                  "KILDE_AGREEMENTS": "4601>0301,0301>5001:emergency"})
    assert settings.agreements == (("4601", "0301"), ("0301", "5001", "emergency"))
    with pytest.raises(SettingsError, match="PROVIDER>CONSUMER:emergency"):
        Settings.from_env({"KILDE_MODE": "demo", "KILDE_AGREEMENTS": "0301>5001:often"})
