"""The write fences that keep late watch changes from resurrecting a client's own writes."""

from __future__ import annotations

from veltrix.fences import WriteFences


def test_unfenced_keys_are_admitted() -> None:
    fences = WriteFences()
    assert fences.admit("k", "1") is True


def test_older_changes_wait_for_the_echo_of_the_latest_write() -> None:
    fences = WriteFences()
    fences.begin("k")
    assert fences.settle("k", "5")[0] is False
    assert fences.admit("k", "3") is False  # older than our write
    assert fences.admit("k", "5") is True  # our echo: the fence is gone
    assert fences.admit("k", "6") is True and len(fences) == 0


def test_echoes_of_repeated_deletes_are_counted_not_matched_once() -> None:
    fences = WriteFences()
    for _ in range(2):  # put, delete, put, delete: two None echoes owed
        fences.begin("k")
        fences.settle("k", "1")
        fences.begin("k")
        fences.settle("k", None)
    fences.begin("k")
    fences.settle("k", "2")
    assert [fences.admit("k", v) for v in ("1", None, "1", None)] == [False] * 4
    assert fences.admit("k", "2") is True


def test_changes_during_the_write_are_replayed_when_it_returns() -> None:
    fences = WriteFences()
    fences.begin("k")
    assert fences.admit("k", "0") is False  # older, arrived while the write ran
    assert fences.admit("k", "7") is False  # our echo, before the call returned
    assert fences.settle("k", "7") == (False, None)
    fences.begin("k")
    fences.admit("k", "8")  # our echo...
    fences.admit("k", "9")  # ...and another writer's later change: refetch
    assert fences.settle("k", "8") == (True, None)


def test_a_failed_write_owes_no_echo() -> None:
    fences = WriteFences()
    fences.begin("k")
    fences.admit("k", "4")  # may be current: refetch
    assert fences.abandon("k") == (True, None)
    assert len(fences) == 0


def test_unechoed_fence_falls_due() -> None:
    fences = WriteFences(hold=0.05)
    fences.begin("k")
    refetch, due = fences.settle("k", None)  # a delete that found nothing: no echo comes
    assert refetch is False and due is not None
    assert fences.due("k", horizon=due) is False  # due at ``due``, not before it
    assert fences.due("k", horizon=due + 0.001) is True and len(fences) == 0
