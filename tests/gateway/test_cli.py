"""The `kilde` command line: arguments are checked before anything starts, in plain words."""

from __future__ import annotations

import socket

import pytest

from gateway.cli import main
from gateway.serving import ListenError, address, listen


@pytest.mark.parametrize(("argv", "says"), [
    (["serve", "--port", "0"], "the port must be from 1 to 65535, not 0"),
    (["serve", "--port", "65536"], "the port must be from 1 to 65535, not 65536"),
    (["serve", "--port", "-1"], "the port must be from 1 to 65535"),
    (["serve", "--port", "http"], "the port must be a whole number from 1 to 65535"),
    (["demo", "--port", "99999"], "the port must be from 1 to 65535"),
    (["sandbox", "--port", "8.5"], "the port must be a whole number"),
    (["serve", "--workers", "0"], "the number of workers must be 1 or more, not 0"),
    (["serve", "--workers", "-3"], "the number of workers must be 1 or more"),
    (["serve", "--workers", "many"], "the number of workers must be a whole number"),
    (["serve", "--fd", "-1"], "the file descriptor must be 0 or more"),
])
def test_bad_arguments_exit_2_with_a_plain_message(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "invalid" not in err  # argparse's own "invalid _port value" is not plain words


def test_a_port_in_use_is_refused_in_plain_words() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match="another process already uses that port"):
            listen("127.0.0.1", port)


def test_the_sandbox_on_a_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as info:
            main(["sandbox", "--port", str(taken.getsockname()[1])])
    assert info.value.code == 2
    assert "another process already uses that port" in capsys.readouterr().err


def test_an_inherited_socket_keeps_its_port() -> None:
    with socket.socket() as given:
        given.bind(("127.0.0.1", 0))
        adopted = listen("ignored", 1, fd=given.fileno())
        assert address(adopted) == ("127.0.0.1", given.getsockname()[1])
        adopted.detach()  # `given` still owns the descriptor


def test_an_fd_that_is_not_a_socket_is_refused() -> None:
    import os

    read, write = os.pipe()
    try:
        with pytest.raises(ListenError, match="not"):
            listen("127.0.0.1", 1, fd=read)
    finally:
        os.close(read)
        os.close(write)
