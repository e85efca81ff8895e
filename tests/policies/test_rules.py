"""Loading the policy: defaults, a custom file laid over them, agreements, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import Agreement, decide_category, load_rules
from tests.policies.people import ALL_CATEGORIES, citizen, clinician


@pytest.mark.parametrize("path", [None, ""])
def test_load_rules_reads_the_defaults(path: str | None) -> None:
    rules = load_rules(path)
    assert rules.attest_max_age_seconds == 3600
    assert rules.restricted_labels == {"R"}
    assert rules.denied_labels == {"V"}
    assert rules.citizen_categories == set(ALL_CATEGORIES)
    assert rules.categories == set(ALL_CATEGORIES)
    assert rules.categories_by_purpose == {"COC": {"municipal_services"}}
    assert rules.categories_granted_by_purpose == {"COC": {"municipal_services"}}
    assert rules.agreements == frozenset()
    assert (rules.clinical_scope, rules.citizen_scope, rules.privacy_officer_scope) == (
        "kilde/patient.read", "kilde/innsyn", "kilde/accesslog.read")


def test_load_rules_adds_agreements() -> None:
    rules = load_rules(agreements=[("4601", "0301"), ("5001", "0301")])
    assert rules.agreements == {Agreement("4601", "0301"), Agreement("5001", "0301")}


@pytest.mark.parametrize("pair", [("46", "0301"), ("4601",), ("4601", 301), "4601>0301"])
def test_load_rules_rejects_a_bad_agreement(pair: object) -> None:
    with pytest.raises(ValueError, match=r"^Agreement .* four-digit municipality numbers\.$"):
        load_rules(agreements=[pair])  # type: ignore[list-item]


PLUGIN_POLICY = """
attest_max_age_seconds = 1800

# A vaccination register connector, enabled for physicians only.
[categories.vaccinations]
professions = ["LE"]

[[agreements]]
provider = "5001"
consumer = "0301"
"""


def test_a_custom_file_enables_a_plugin_category(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(PLUGIN_POLICY, encoding="utf-8")
    rules = load_rules(str(path), agreements=[("4601", "0301")])

    assert decide_category(clinician(), "vaccinations", rules=rules).allowed
    nurse = decide_category(clinician(profession="SP"), "vaccinations", rules=rules)
    assert (nurse.allowed, nurse.reason) == (False, "PROFESSION_NOT_PERMITTED")
    self_ = decide_category(citizen(), "vaccinations", rules=rules)
    assert (self_.allowed, self_.reason) == (False, "CATEGORY_NOT_PERMITTED")
    # The defaults underneath are kept.
    assert decide_category(clinician(), "lab_results", rules=rules).allowed
    assert rules.attest_max_age_seconds == 1800
    assert rules.agreements == {Agreement("5001", "0301"), Agreement("4601", "0301")}


def test_a_custom_category_table_replaces_the_default_row(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[categories.documents]\nprofessions = ["LE", "SP"]\ncitizen = false\n',
                    encoding="utf-8")
    rules = load_rules(str(path))
    assert decide_category(clinician(profession="SP"), "documents", rules=rules).allowed
    assert not decide_category(citizen(), "documents", rules=rules).allowed
    assert not decide_category(clinician(profession="SP"), "documents", rules=load_rules()).allowed


BAD_FILES = [
    pytest.param('attest_max_age_seconds = "an hour"', "attest_max_age_seconds", id="age-text"),
    pytest.param("attest_max_age_seconds = 7200", "attest_max_age_seconds", id="age-over-60-min"),
    pytest.param("attest_max_age_seconds = true", "attest_max_age_seconds", id="age-bool"),
    pytest.param('colour = "blue"', "colour", id="unknown-top-key"),
    pytest.param("categories = 3", "categories", id="categories-not-a-table"),
    pytest.param('[categories.vaccinations]\nprofessions = "LE"',
                 "categories.vaccinations.professions", id="professions-not-a-list"),
    pytest.param('[categories.vaccinations]\nprofessions = ["lege"]',
                 "categories.vaccinations.professions", id="profession-not-a-code"),
    pytest.param('[categories.vaccinations]\nprofesions = ["LE"]',
                 "categories.vaccinations.profesions", id="misspelt-key"),
    pytest.param('[categories.vaccinations]\ncitizen = "yes"',
                 "categories.vaccinations.citizen", id="citizen-not-bool"),
    pytest.param("[categories.Vaccinations]", "categories.Vaccinations", id="bad-category-name"),
    pytest.param("[purposes.XYZ]", "purposes.XYZ", id="unknown-purpose"),
    pytest.param('[purposes.COC]\nonly = ["vaccinations"]', "purposes.COC",
                 id="purpose-names-unknown-category"),
    pytest.param('[labels]\nrestricted = "R"', "labels.restricted", id="labels-not-a-list"),
    pytest.param('[scopes]\nclinical = ""', "scopes.clinical", id="blank-scope"),
    pytest.param('[[agreements]]\nprovider = "46"\nconsumer = "0301"', "agreements",
                 id="agreement-bad-number"),
    pytest.param('agreements = "4601>0301"', "agreements", id="agreements-not-tables"),
]


@pytest.mark.parametrize(("text", "key"), BAD_FILES)
def test_a_bad_file_raises_value_error_naming_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "bad-policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.$") as caught:
        load_rules(str(path))
    message = str(caught.value)
    assert repr(str(path)) in message
    assert repr(key) in message
    assert "\n" not in message


def test_malformed_toml_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[categories.vaccinations\nprofessions = [", encoding="utf-8")
    with pytest.raises(ValueError, match=r"is not valid TOML") as caught:
        load_rules(str(path))
    assert repr(str(path)) in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)


def test_a_missing_file_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.toml")
    with pytest.raises(ValueError, match=r"cannot be read") as caught:
        load_rules(path)
    assert repr(path) in str(caught.value)


def test_blocks_hold_everywhere_by_default_and_a_policy_file_can_switch_that(
    tmp_path: Path,
) -> None:
    defaults = load_rules()
    assert (defaults.block_everywhere, defaults.block_sources) == (
        True, {"kjernejournal", "municipal"})
    policy = tmp_path / "policy.toml"
    policy.write_text('[blocks]\neverywhere = false\nsources = ["kjernejournal"]\n',
                      encoding="utf-8")
    rules = load_rules(str(policy))
    assert (rules.block_everywhere, rules.block_sources) == (False, {"kjernejournal"})


@pytest.mark.parametrize(("text", "key"), [
    ('[blocks]\neverywhere = "yes"\n', "blocks.everywhere"),
    ('[blocks]\nsources = ["Kjernejournal!"]\n', "blocks.sources"),
    ('[blocks]\nwhere = true\n', "blocks.where"),
])
def test_a_bad_blocks_table_fails_the_start_naming_the_key(tmp_path: Path, text: str,
                                                            key: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_rules(str(policy))
