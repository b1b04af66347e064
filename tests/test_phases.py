"""The phase table."""

from __future__ import annotations

import pytest

from opus.core.phases import ACTIVE, TERMINAL, TRANSITIONS, Phase, can_change, parse_phase


def test_terminal_phases_only_archive() -> None:
    for phase in TERMINAL - {Phase.ARCHIVED}:
        assert TRANSITIONS[phase] == {Phase.ARCHIVED}
    assert TRANSITIONS[Phase.ARCHIVED] == frozenset()


def test_illegal_changes_are_refused() -> None:
    assert not can_change(Phase.COMPLETED, Phase.EXECUTING)
    assert not can_change(Phase.PENDING, Phase.EXECUTING)  # RUN goes through QUEUED
    assert can_change(Phase.QUEUED, Phase.EXECUTING)
    assert can_change(Phase.EXECUTING, Phase.COMPLETED)


def test_every_phase_has_a_row_and_active_is_not_terminal() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert not ACTIVE & TERMINAL


def test_parse_phase() -> None:
    assert parse_phase(" executing ") is Phase.EXECUTING
    with pytest.raises(ValueError, match="unknown phase"):
        parse_phase("RUNNING")


def test_allowed_predecessors_follow_the_table() -> None:
    from opus.core.phases import allowed_predecessors

    assert allowed_predecessors(Phase.QUEUED) == {
        Phase.PENDING,
        Phase.HELD,
        Phase.SUSPENDED,
        Phase.UNKNOWN,
    }
    assert Phase.COMPLETED not in allowed_predecessors(Phase.EXECUTING)
    for phase in Phase:
        for source in allowed_predecessors(phase):
            assert can_change(source, phase)
