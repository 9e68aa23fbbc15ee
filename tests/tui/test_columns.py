"""The column fitter (`tui/columns.fit`): what a narrow terminal keeps."""

from __future__ import annotations

from portfwd.tui.columns import Column, fit

COLS = (
    Column("kind", "Kind", lambda r, now: 0, 0),
    Column("name", "Name", lambda r, now: 0, 1, min_width=12),
    Column("ready", "Ready", lambda r, now: 0, 2),
    Column("age", "Age", lambda r, now: 0, 6),
    Column("ports", "Ports", lambda r, now: 0, 5, min_width=8, flex=True),
)


def test_a_core_column_one_cell_short_cuts_a_cuttable_one_instead_of_being_dropped() -> None:
    # kind 6+2, name 21+2, ready 11+2 = 44 of 53: ports at its 8 (+2) needs 54.
    natural = {"kind": 6, "name": 21, "ready": 11, "age": 3, "ports": 30}
    layout = fit(natural, (), 53, 1, COLS)
    assert layout.keys == ("kind", "name", "ready", "ports")  # not Age in Ports' place
    assert layout.width("name") == 20 and layout.width("ports") == 8


def test_a_less_important_column_never_cuts_a_more_important_one() -> None:
    cols = (*COLS[:3], Column("pod", "Pod", lambda r, now: 0, 9, min_width=10))
    natural = {"kind": 6, "name": 21, "ready": 11, "pod": 30}
    layout = fit(natural, (), 54, 1, cols)
    assert layout.keys == ("kind", "name", "ready")
    assert layout.width("name") == 21


def test_a_cut_column_keeps_its_minimum() -> None:
    natural = {"kind": 6, "name": 21, "ready": 11, "age": 3, "ports": 30}
    layout = fit(natural, (), 44, 1, COLS)  # ports would need name below 12
    assert "ports" not in layout.keys and layout.width("name") == 21


def test_a_header_is_never_cut() -> None:
    cols = (*COLS[:3], Column("error", "Last error", lambda r, now: 0, 5, min_width=8, flex=True))
    natural = {"kind": 6, "name": 21, "ready": 11, "error": 80}
    layout = fit(natural, (), 54, 1, cols)  # 8 left for the error: `Last err…` before
    assert layout.width("error") == len("Last error") and layout.width("name") == 19


def test_shorter_forms_go_before_a_column_to_keep_whole_is_cut() -> None:
    cols = (
        Column("target", "Target", lambda r, now: 0, 1, min_width=8, keep_whole=True),
        Column("remote", "Remote", lambda r, now: 0, 3),
    )
    natural = {"target": 20, "remote": 18}  # `443 → 8443 (https)`
    steps = ({"remote": 9}, {"remote": 6})  # `443→8443`, then `443` (its label: 6)
    assert fit(natural, steps, 42, 1, cols).step == 0
    layout = fit(natural, steps, 33, 1, cols)
    assert layout.step == 1 and layout.width("target") == 20
    layout = fit(natural, steps, 30, 1, cols)
    assert layout.step == 2 and layout.width("target") == 20


def test_a_spare_column_shows_only_in_room_the_last_error_does_not_need() -> None:
    cols = (
        Column("name", "Name", lambda r, now: 0, 9, spare=True),
        Column("kind", "Kind", lambda r, now: 0, 0),
        Column("error", "Last error", lambda r, now: 0, 5, min_width=8, flex=True),
    )
    natural = {"name": 10, "kind": 6, "error": 40}
    assert "name" not in fit(natural, (), 60, 1, cols).keys  # the error whole first
    layout = fit(natural, (), 80, 1, cols)
    assert layout.width("name") == 10 and layout.width("error") >= 40


def test_a_middle_cut_keeps_the_kind_and_the_end_that_tells_names_apart() -> None:
    from rich.text import Text

    from portfwd.tui.widgets.fitted_table import cut

    assert cut(Text("deploy/api-7d9f-qwert"), 14, "middle").plain == "deploy/…-qwert"
    assert cut(Text("pod/echo-5f7c9-abcde"), 12, "middle").plain.endswith("-abcde")
    assert cut(Text("pod/echo-5f7c9-zxcvb"), 12, "middle").plain.endswith("-zxcvb")
    assert cut(Text("kind-staging"), 9, "middle").plain.endswith("taging")
    assert cut(Text("svc/echo"), 8, "middle").plain == "svc/echo"
    assert len(cut(Text("a-long-error-message"), 8).plain) == 8


def test_browse_keeps_pod_names_apart_at_80_columns() -> None:
    from rich.text import Text

    from portfwd.tui.screens.resources import RESOURCE_COLUMNS
    from portfwd.tui.widgets.fitted_table import cut

    pods = [
        "payments-api-backend-worker-7d9f8c6b5-x2k4p",
        "payments-api-backend-worker-7d9f8c6b5-q9w8e",
    ]
    natural = {"kind": 6, "name": 43, "ready": 5, "status": 16, "restarts": 8, "age": 3}
    natural |= {"forwards": 8, "ports": 30}
    layout = fit(natural, (), 79, 1, RESOURCE_COLUMNS)
    width = layout.width("name")
    how = next(c.cut for c in RESOURCE_COLUMNS if c.key == "name")
    shown = {cut(Text(p), width, how).plain for p in pods}
    assert len(shown) == 2 and all(s.endswith(("-x2k4p", "-q9w8e")) for s in shown), shown
