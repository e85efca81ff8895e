"""`kilde token` gets a persona's token from the running sandbox's HelseID simulator, and with
`--jkt` binds it to the caller's DPoP key; every failure is one sentence and exit status 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import jwt
import pytest

from connectors.credentials import generate_key
from gateway import cli
from sandbox.app import create_app as create_sandbox
from tests.servers import ServerThread, running

PATIENT = "14033841389"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    with running(create_sandbox({})) as server:
        yield server


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["token", *args])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_the_token_is_the_simulators_for_kilde_with_the_persona_and_attest(
        sandbox: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, _ = _token(capsys, "--persona", "legevakt-lege", "--patient", PATIENT,
                            "--sandbox", sandbox.url)
    assert code == 0
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == f"{sandbox.url}/helseid"
    assert claims["aud"] == "kilde"
    assert claims["helseid://claims/hpr/hpr_number"] == "9144901"
    assert claims["authorization_details"][0]["patients"][0]["identifier"]["id"] == PATIENT
    assert "cnf" not in claims


def test_jkt_binds_the_token_to_the_callers_key(
        sandbox: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_key()
    code, token, _ = _token(capsys, "--persona", "hjemmesykepleier", "--patient", PATIENT,
                            "--jkt", key.thumbprint, "--purpose", "COC", "--sandbox",
                            sandbox.url)
    assert code == 0
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.thumbprint}
    assert claims["authorization_details"][0]["care_relationship"]["purpose_of_use"][
        "code"] == "COC"


@pytest.mark.parametrize(("args", "says"), [
    (["--persona", "nobody"], "Unknown persona 'nobody'"),
    (["--persona", "legevakt-lege", "--patient", "12345678901"],
     "must be a valid national identity number"),
    (["--persona", "innbygger"], "needs a patient"),
    (["--persona", "legevakt-lege", "--jkt", "x"], "thumbprint"),
])
def test_a_bad_request_is_one_sentence_and_exit_2(
        sandbox: ServerThread, capsys: pytest.CaptureFixture[str], args: list[str],
        says: str) -> None:
    code, out, err = _token(capsys, *args, "--sandbox", sandbox.url)
    assert code == 2
    assert out == ""
    assert says in err
    assert "Traceback" not in err


def test_no_sandbox_running_says_to_start_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # bound but not listening: the port is ours, and refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code, out, err = _token(capsys, "--persona", "legevakt-lege", "--sandbox", url)
    assert code == 2
    assert out == ""
    assert "start `kilde demo`" in err
