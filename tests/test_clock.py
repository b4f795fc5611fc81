"""``updatedAt`` moves on with every update: ``utc_now_after`` is now, or a millisecond after the
stamp it follows when that one is not in the past (a coarse or stepped-back clock, a fixture
dated in the future), whatever shape of ISO-8601 that stamp has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from timbrix_sandbox.engine.clock import parse, utc_now, utc_now_after


def test_after_a_past_stamp_of_ours_is_now():
    before = utc_now()
    stamp = utc_now_after("2020-05-01T10:00:00.000Z")
    assert before <= stamp <= utc_now()


def test_after_a_stamp_of_this_millisecond_or_later_is_a_millisecond_later():
    future = "2999-01-01T00:00:00.000Z"
    assert utc_now_after(future) == "2999-01-01T00:00:00.001Z"
    now = utc_now()
    assert parse(utc_now_after(now)) >= parse(now) + timedelta(milliseconds=1)


def test_stamps_in_other_shapes_are_compared_as_times_not_as_text():
    # As text "2999-01-01T01:00:00+01:00" sorts after "2999-01-01T00:30:00.000Z"; as a time it
    # is 30 minutes before it. Fixtures and clients write such stamps.
    assert utc_now_after("2999-01-01T01:00:00+01:00") == "2999-01-01T00:00:00.001Z"
    assert utc_now_after("2999-01-01T00:00:00Z") == "2999-01-01T00:00:00.001Z"
    past = utc_now_after("2020-05-01T10:00:00Z")
    assert abs(parse(past) - datetime.now(UTC)) < timedelta(seconds=5)
    assert utc_now_after("2999-01-01T00:00:00") == "2999-01-01T00:00:00.001Z"  # no offset: UTC


def test_an_update_never_fails_on_the_stamp_it_follows() -> None:
    """A stored ``updatedAt`` that is no date-time (a contract may let clients write it), or
    one too late to move past, gives way to now instead of failing the update."""
    for previous in ("yesterday", "Mon, 16 Aug 2010 03:45:01 +0000", "9999-12-31T23:59:59.999Z", "٢٠٢٦-01-01"):
        before = utc_now()
        assert before <= utc_now_after(previous) <= utc_now(), previous
