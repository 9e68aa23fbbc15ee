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
    layout = fit(natural, {}, 53, 1, COLS)
    assert layout.keys == ("kind", "name", "ready", "ports")  # not Age in Ports' place
    assert layout.width("name") == 20 and layout.width("ports") == 8


def test_a_less_important_column_never_cuts_a_more_important_one() -> None:
    cols = (*COLS[:3], Column("pod", "Pod", lambda r, now: 0, 9, min_width=10))
    natural = {"kind": 6, "name": 21, "ready": 11, "pod": 30}
    layout = fit(natural, {}, 54, 1, cols)
    assert layout.keys == ("kind", "name", "ready")
    assert layout.width("name") == 21


def test_a_cut_column_keeps_its_minimum() -> None:
    natural = {"kind": 6, "name": 21, "ready": 11, "age": 3, "ports": 30}
    layout = fit(natural, {}, 44, 1, COLS)  # ports would need name below 12
    assert "ports" not in layout.keys and layout.width("name") == 21
