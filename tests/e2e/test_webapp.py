"""The legevakt web app in a real browser: headless Chromium drives /app against the demo stack.

The stack is laid out as `kilde demo` lays it out: the gateway with the sandbox mounted on the
same server, so `/app`, `/graphql`, `/_demo/...` and `/_sandbox/...` share one origin.
Screenshots go to docs/artifacts/ (git-ignored); with KILDE_TEST__UPDATE_SCREENSHOTS=1 the
legevakt screen also replaces docs/screenshots/legevakt.png, the one the README shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.app import SOURCES
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.browser import app_page, chromium
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "docs" / "artifacts"
README_SCREENSHOT = ROOT / "docs" / "screenshots" / "legevakt.png"
HLR = by_tag("legevakt-hlr")
RESTRICTED = by_tag("restricted-lab")
HOLIDAY = by_tag("holiday")
DECEASED = by_tag("deceased")
UNREGISTERED = by_tag("not-in-registry")
PROTECTED = by_tag("address-protected")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    audit = tmp_path_factory.mktemp("webapp") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url


@pytest.fixture
def page(browser: Any, demo: str) -> Iterator[Any]:
    try:
        with app_page(browser, f"{demo}/app/", timeout_ms=15_000) as page:
            yield page
    finally:
        for source in SOURCES:
            httpx.put(f"{demo}/_sandbox/faults/{source}", json={"mode": "none"})


def _open(page: Any, persona: str, nin: str, view: str = "patient") -> None:
    page.select_option("#persona", persona)
    page.select_option("#patient", nin)
    page.click("#open")
    page.wait_for_selector(f"#screen[data-view={view}]")


def _shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _top(page: Any, selector: str) -> float:
    return float(page.locator(selector).first.bounding_box()["y"])


def test_legevakt_sees_the_hlr_minus_banner_above_everything_else(page: Any) -> None:
    _open(page, "legevakt-lege", HLR.nin)
    banner = page.locator("[data-testid=hlr-minus]")
    assert banner.count() == 1
    assert page.locator(".alert").first.get_attribute("data-testid") == "hlr-minus"
    assert "HLR-minus" in banner.inner_text()
    assert "Kommunal journal" in banner.locator(".src").inner_text()  # from the nursing home
    box = banner.bounding_box()
    for later in ("#sources", "#services", "#medications", "#labs", "#conditions"):
        assert box["y"] + box["height"] <= _top(page, later), later
    assert banner.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(161, 13, 18)"
    statuses = page.locator(".source").evaluate_all(
        "els => Object.fromEntries(els.map(e => [e.dataset.source, e.dataset.status]))")
    assert statuses == dict.fromkeys(SOURCES, "OK")
    # every item says where it came from
    for section in ("#services", "#medications", "#labs", "#conditions"):
        items = page.locator(f"{section} .item, {section} .lab")
        assert items.count() > 0, section
        assert page.locator(f"{section} .item .src, {section} .lab .src").count() >= items.count()
    assert "Lindeberg sykehjem" in page.inner_text("#services")
    assert page.locator("#labs tr[data-abnormal=true] .flag").count() >= 1
    path = _shoot(page, "legevakt")
    if os.environ.get("KILDE_TEST__UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOT)


def test_a_hanging_source_is_marked_timed_out_while_the_rest_render(page: Any,
                                                                     demo: str) -> None:
    page.click(".sandbox summary")
    page.select_option("#fault-source", "kjernejournal")
    page.select_option("#fault-mode", "hang")
    page.click("#fault-apply")
    page.wait_for_selector("#status:has-text('Kjernejournal')")
    assert httpx.get(f"{demo}/_sandbox/faults").json()["kjernejournal"]["mode"] == "hang"

    _open(page, "legevakt-lege", HLR.nin)
    kj = page.locator(".source[data-source=kjernejournal]")
    assert kj.get_attribute("data-status") == "TIMEOUT"
    assert "Tidsavbrudd" in kj.inner_text()
    others = page.locator(".source:not([data-source=kjernejournal])").evaluate_all(
        "els => els.map(e => e.dataset.status)")
    assert others == ["OK"] * 5  # the other sources and the population registry
    assert page.locator("[data-testid=hlr-minus]").count() == 1  # municipal still answered
    assert "Kjernejournal" in page.inner_text("#alerts .gap")  # the alerts say they may be partial
    assert page.locator("#medications .item").count() > 0
    assert page.locator("#labs .lab").count() > 0
    _shoot(page, "legevakt-kjernejournal-timeout")


def test_the_citizen_sees_the_legevakt_access_in_their_log(page: Any) -> None:
    _open(page, "legevakt-lege", HLR.nin)
    _open(page, "innbygger", HLR.nin, view="log")
    assert page.inner_text("#log-h") == "Hvem har sett mine opplysninger"
    rows = page.locator("#access-log tbody tr[data-purpose=ETREAT]")
    assert rows.count() >= 1
    first = rows.first.inner_text()
    assert "Oslo kommune legevakt" in first
    assert "Øyeblikkelig hjelp" in first
    _shoot(page, "innbygger-innsyn")


def test_emergency_access_asks_for_a_reason_and_opens_restricted_results(page: Any) -> None:
    _open(page, "legevakt-lege", RESTRICTED.nin)
    assert page.get_attribute(".source[data-source=proevesvar]", "data-status") == "RESTRICTED"
    page.focus("#emergency")
    page.keyboard.press("Enter")  # reachable from the keyboard
    dialog = page.locator("#emergency-dialog")
    assert dialog.evaluate("d => d.open")
    page.click("#emergency-confirm")  # no reason given: the form refuses
    assert dialog.evaluate("d => d.open")
    page.keyboard.type("Bevisstløs pasient, trenger prøvesvar")  # focus is in the reason field
    page.click("#emergency-confirm")
    page.wait_for_selector(".emergency-used")
    assert page.get_attribute(".source[data-source=proevesvar]", "data-status") == "OK"
    assert page.locator("#labs .lab").count() > 0
    _shoot(page, "legevakt-noedtilgang")
    _open(page, "innbygger", RESTRICTED.nin, view="log")
    emergency = page.locator("#access-log tr.emergency")
    assert "Nødtilgang" in emergency.first.inner_text()
    assert "Bevisstløs pasient" in emergency.first.inner_text()
    _shoot(page, "innbygger-noedtilgang")


CONFLICTING = by_tag("conflicting-limitations")
LABELLED = by_tag("labelled-hlr")
MULTI = by_tag("multi-service")


def test_disagreeing_decisions_put_a_conflict_banner_above_the_hlr_minus(page: Any) -> None:
    _open(page, "legevakt-lege", CONFLICTING.nin)
    conflict = page.locator("[data-testid=conflict]")
    assert conflict.count() == 1
    assert page.locator(".alert").first.get_attribute("data-testid") == "conflict"
    text = conflict.text_content() or ""
    assert "Motstridende behandlingsavklaringer" in text
    assert "Kjernejournal" in text
    assert "Kommunal journal" in text
    assert text.index("01.10.2026") < text.index("10.01.2025")  # the newest decision first
    hlr = page.locator("[data-testid=hlr-minus]")
    assert hlr.count() == 1
    assert _top(page, "[data-testid=conflict]") < _top(page, "[data-testid=hlr-minus]")
    assert hlr.locator("[data-testid=disputed]").count() == 1  # the HLR-minus is marked too
    _shoot(page, "legevakt-konflikt")


def test_a_withheld_hlr_minus_says_nodtilgang_may_show_more_and_then_does(page: Any) -> None:
    _open(page, "legevakt-lege", LABELLED.nin)
    assert page.locator("[data-testid=hlr-minus]").count() == 0
    hint = page.locator("#alerts [data-testid=withheld]")
    assert hint.count() == 1
    assert "Skjult: nødtilgang kan vise mer" in hint.inner_text()
    assert "Kommunal journal" in hint.inner_text()
    assert "Ingen behandlingsavklaringer eller kritisk informasjon funnet" not in page.inner_text(
        "#alerts")  # hidden is not absent
    assert "fra alle kilder" not in page.inner_text("#status")
    _shoot(page, "legevakt-skjult")
    page.click("#emergency")
    page.keyboard.type("Hjertestans, trenger behandlingsavklaring")
    page.click("#emergency-confirm")
    page.wait_for_selector(".emergency-used")
    assert page.locator("[data-testid=hlr-minus]").count() == 1
    assert page.locator("#alerts [data-testid=withheld]").count() == 0


def test_the_summary_says_from_all_sources_only_when_every_source_answered_completely(
    page: Any,
) -> None:
    _open(page, "legevakt-lege", MULTI.nin)
    assert "fra alle kilder" in page.inner_text("#status")
    _open(page, "legevakt-lege", RESTRICTED.nin)
    status = page.inner_text("#status")
    assert "fra alle kilder" not in status
    assert "Pasientens prøvesvar: skjult, nødtilgang kan vise mer" in status


def test_the_patient_picker_shows_names_and_numbers_not_scenario_tags(page: Any,
                                                                     demo: str) -> None:
    patients = httpx.get(f"{demo}/_sandbox/patients").json()
    towns = {m["number"]: m["name"] for m in httpx.get(f"{demo}/_sandbox/municipalities").json()}
    labels = page.locator("#patient option").evaluate_all(
        "els => els.map(e => [e.value, e.textContent])")
    assert [nin for nin, _ in labels] == [p["nin"] for p in patients]
    tags = {tag for p in patients for tag in p["tags"]}
    assert tags  # the sandbox has them; the picker must not show them
    for (nin, label), p in zip(labels, patients, strict=True):
        assert label == f"{p['name']} · {nin[:6]} {nin[6:]} · {towns[p['municipality']]}"
        assert not any(tag in label for tag in tags), label


@pytest.fixture(scope="module")
def cached_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo stack with its cache on, as `kilde demo` runs it (the shared one has none)."""
    audit = tmp_path_factory.mktemp("webapp-cache") / "audit.sqlite3"
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    base = e2e_settings(port_of(sock), url, f"sqlite:///{audit}")
    settings = replace(base, cache=replace(base.cache, enabled=True))
    with running(demo_app(settings, sandbox=create_sandbox({})), sock):
        yield url


def test_a_stale_source_shows_the_age_of_its_data_not_the_latency(browser: Any,
                                                                   cached_demo: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO",
                                  timezone_id="Europe/Oslo")
    problems: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.goto(f"{cached_demo}/app/")
        page.wait_for_selector("body[data-ready=true]")
        _open(page, "legevakt-lege", HLR.nin)  # the answers go into the cache
        kj = page.locator(".source[data-source=kjernejournal]")
        assert kj.get_attribute("data-status") == "OK"
        assert page.locator(".source-age").count() == 0
        httpx.put(f"{cached_demo}/_sandbox/faults/kjernejournal", json={"mode": "error"})
        page.check("#fresh")  # past the cache: Kjernejournal fails, its last answer is served
        page.click("#open")
        page.wait_for_selector(".source[data-source=kjernejournal][data-status=STALE]")
        chip = kj.locator(".source-age")
        seconds = int(chip.get_attribute("data-age-seconds"))
        assert 0 <= seconds < 60
        assert chip.inner_text() == f"hentet for {seconds} s siden"
        assert " ms" not in kj.inner_text()  # the latency is not what a STALE chip shows
        badge = kj.locator(".badge")
        assert badge.inner_text() == "Foreldet"  # Norwegian; the code is the tooltip
        assert badge.get_attribute("title") == "STALE"
        assert page.locator(".source:not([data-source=kjernejournal]) .source-age").count() == 0
        _shoot(page, "legevakt-kjernejournal-stale")
        # the chip's words for older data, from the same rendering code with a row 125 s old
        text = page.evaluate("""async () => {
            const r = await import('/app/render.js');
            const rows = [{ source: 'kjernejournal', category: 'CRITICAL_INFORMATION',
              status: 'STALE', latencyMs: 3.2, ageSeconds: 125.4, fromCache: true }];
            return r.renderSourceBar(rows, {}).querySelector('.source').textContent; }""")
        assert "hentet for 2 min siden" in text
        assert "3 ms" not in text
    finally:
        httpx.put(f"{cached_demo}/_sandbox/faults/kjernejournal", json={"mode": "none"})
        context.close()
    assert problems == []


def test_status_words_on_screen_are_norwegian_with_the_code_as_tooltip(page: Any,
                                                                      demo: str) -> None:
    httpx.put(f"{demo}/_sandbox/faults/pll", json={"mode": "garbage"})
    _open(page, "legevakt-lege", RESTRICTED.nin)
    badges = page.locator(".badge[data-status]").evaluate_all(
        "els => els.map(e => [e.dataset.status, e.title, e.textContent])")
    assert {status for status, _, _ in badges} >= {"INVALID", "RESTRICTED"}
    for status, title, text in badges:
        assert title == status
        if status != "OK":  # "OK" is Norwegian too
            assert status not in text, text  # "Ugyldig svar", not "Ugyldig svar INVALID"
    screen = page.inner_text("#screen")
    for code in ("INVALID", "RESTRICTED", "TIMEOUT", "STALE", "UNAVAILABLE"):
        assert code not in screen
    for text in page.locator(".alert-meta, .gap, .withheld, #status").all_inner_texts():
        assert not any(mark in text for mark in ("..", " .", ",.", ", ,", " ,", ":.")), text


def test_the_holiday_patient_in_trondheim_says_oslos_store_was_not_asked(page: Any) -> None:
    _open(page, "lege-annen-kommune", HOLIDAY.nin)
    note = page.locator("#alerts [data-testid=not-asked]")
    assert note.count() == 1
    assert note.inner_text() == "Oslo kommunes journal ble ikke spurt (ingen avtale)."
    assert note.get_attribute("data-municipality") == "0301"
    assert page.locator("[data-testid=hlr-minus]").count() == 0
    assert "Ingen behandlingsavklaringer eller kritisk informasjon funnet" not in page.inner_text(
        "#alerts")  # not asked is not absent
    status = page.inner_text("#status")
    assert "fra alle kilder" not in status
    assert "Oslo kommunes journal: ikke spurt (ingen avtale)" in status
    bar = page.locator(".source[data-municipality='0301']")
    assert bar.count() == 1
    _shoot(page, "legevakt-ikke-spurt")


def test_the_patient_header_shows_name_age_and_home_from_the_registry(page: Any) -> None:
    _open(page, "lege-annen-kommune", HOLIDAY.nin)
    assert page.inner_text("#patient-h") == HOLIDAY.name
    line = page.locator("[data-testid=demographics]")
    assert line.get_attribute("data-home") == "0301"
    text = line.inner_text()
    assert "år" in text
    assert "(født 12.05.1941)" in text
    assert "Bor i Oslo (0301)" in text
    _open(page, "legevakt-lege", DECEASED.nin)
    assert "Død 20.11.2026" in page.inner_text("[data-testid=demographics]")
    assert "92 år" in page.inner_text("[data-testid=demographics]")


def test_a_protected_address_is_said_to_be_protected_and_never_shown(page: Any) -> None:
    _open(page, "lege-annen-kommune", PROTECTED.nin)
    line = page.locator("[data-testid=demographics]")
    assert line.get_attribute("data-home") == ""
    assert "Bor i beskyttet adresse" in line.inner_text()
    assert page.locator("#alerts [data-testid=home-unknown]").inner_text().startswith(
        "Adressen er beskyttet")
    assert "adressen er beskyttet" in page.inner_text("#status")
    for region in ("[data-testid=demographics]", "#alerts", "#status"):
        text = page.inner_text(region)
        assert "Oslo" not in text, (region, text)
        assert "0301" not in text, (region, text)


def test_a_patient_unknown_to_the_registry_says_the_home_is_unknown(page: Any) -> None:
    _open(page, "lege-annen-kommune", UNREGISTERED.nin)
    assert "Ukjent i Folkeregisteret" in page.inner_text("[data-testid=demographics]")
    assert page.locator("#alerts [data-testid=home-unknown]").count() == 1
    assert "hjemkommunen er ukjent" in page.inner_text("#status")
