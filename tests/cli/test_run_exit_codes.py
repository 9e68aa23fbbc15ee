"""The one runner of every command: expected failures are one `error:` line and the
documented exit code (README), never a traceback; a bug still shows its traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portfwd.cli.connected import DAEMON_ERRORS
from portfwd.cli.run import Exit, ExitCode, run
from portfwd.cli.transfer import TRANSFER_ERRORS
from portfwd.daemon.replies import NotRunning, RemoteError
from portfwd.errors import InputError, PortfwdError
from portfwd.transfer.result import Unreadable


def _ran(
    body: Callable[[], int], codes: object = None, *, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        run(body, codes)  # type: ignore[arg-type]
    return int(ended.value.code or 0), capsys.readouterr().err


def _raises(exc: BaseException) -> Callable[[], int]:
    def body() -> int:
        raise exc

    return body


def test_the_documented_values() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 124, 125, 126, 127, 130]


def test_a_body_s_code_is_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert _ran(lambda: 0, capsys=capsys) == (0, "")
    assert _ran(lambda: ExitCode.USAGE, capsys=capsys) == (2, "")
    assert _ran(_raises(Exit(4)), capsys=capsys) == (4, "")


def test_a_portfwd_error_is_one_escaped_line_and_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _ran(_raises(PortfwdError("bad \x1b[31mthing")), capsys=capsys)
    assert (code, err) == (1, "error: bad \\x1b[31mthing\n")
    # Without a command group's own codes, bad input is a failure too (`portfwd forward`).
    assert _ran(_raises(InputError("typo")), capsys=capsys) == (1, "error: typo\n")


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (NotRunning("no portfwd daemon is running"), 3, "error: no portfwd daemon is running"),
        (
            KeyError("no forward has the name or id 'x'"),
            4,
            "error: no forward has the name or id 'x'",
        ),
        (InputError("bad port"), 2, "error: bad port"),
        (RemoteError("failed", "it broke"), 1, "error: it broke"),
    ],
)
def test_the_daemon_s_clients(
    exc: Exception, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ran(_raises(exc), DAEMON_ERRORS, capsys=capsys) == (code, line + "\n")


def test_import_and_export(capsys: pytest.CaptureFixture[str]) -> None:
    assert _ran(_raises(Unreadable("f:3: not UTF-8 text")), TRANSFER_ERRORS, capsys=capsys) == (
        2,
        "error: f:3: not UTF-8 text\n",
    )
    assert _ran(_raises(PortfwdError("x")), TRANSFER_ERRORS, capsys=capsys)[0] == 1


def test_ctrl_c_is_130_and_a_bug_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert _ran(_raises(KeyboardInterrupt()), capsys=capsys) == (130, "")
    with pytest.raises(ZeroDivisionError):
        run(lambda: 1 // 0)
    with pytest.raises(KeyError):  # a KeyError is only "not found" for the daemon's clients
        run(_raises(KeyError("x")))
