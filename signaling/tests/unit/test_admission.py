"""signaling.admission: the decision to take new sessions (SPEC section 7, docs/protocol.md
"Past capacity"). Unit tier: time and lag passed in, no event loop."""

from __future__ import annotations

from signaling.admission import OVERLOAD_HOLD_S, Admission, LagMonitor, Refusal


def test_a_punctual_loop_admits_new_sessions() -> None:
    # given a monitor that trips at 0.5 s of lag
    admission = Admission(LagMonitor(threshold_s=0.5))
    # when the loop runs late by less than that
    for step in range(100):
        admission.lag.observe(0.499, now=step * 0.1)
    # then new sessions are welcome
    assert admission.refusal(now=10.0) is None


def test_a_late_loop_refuses_until_it_kept_time_for_the_hold() -> None:
    # given a monitor that trips at 0.5 s
    monitor = LagMonitor(threshold_s=0.5)
    admission = Admission(monitor)
    # when one sample reaches the threshold at t=100
    assert monitor.observe(0.5, now=100.0) is True
    # then new sessions are refused as overloaded until OVERLOAD_HOLD_S after it
    assert admission.refusal(now=100.0) is Refusal.OVERLOADED
    assert admission.refusal(now=100.0 + OVERLOAD_HOLD_S - 0.01) is Refusal.OVERLOADED
    assert admission.refusal(now=100.0 + OVERLOAD_HOLD_S) is None


def test_a_late_sample_while_overloaded_extends_the_hold_and_is_not_a_new_trip() -> None:
    # given a tripped monitor
    monitor = LagMonitor(threshold_s=0.5)
    monitor.observe(2.0, now=10.0)
    # when the loop is late again 3 s later
    tripped_again = monitor.observe(0.8, now=13.0)
    # then it is the same overload, held from the last late sample
    assert tripped_again is False
    assert monitor.is_overloaded(now=13.0 + OVERLOAD_HOLD_S - 0.01) is True
    assert monitor.is_overloaded(now=13.0 + OVERLOAD_HOLD_S) is False
    assert (monitor.last_lag_s, monitor.max_lag_s) == (0.8, 2.0)


def test_a_zero_threshold_never_refuses() -> None:
    # given OVERLOAD_LAG=0
    admission = Admission(LagMonitor(threshold_s=0))
    # when the loop is 10 s late
    assert admission.lag.observe(10.0, now=1.0) is False
    # then nothing is refused
    assert admission.refusal(now=1.0) is None


def test_draining_refuses_for_good_and_wins_over_overload() -> None:
    # given an overloaded process
    admission = Admission(LagMonitor(threshold_s=0.5))
    admission.lag.observe(1.0, now=0.0)
    # when it starts draining (twice: the second call reports it was already draining)
    assert admission.start_draining() is True
    assert admission.start_draining() is False
    # then every later handshake is refused as draining, long after the overload
    assert admission.is_draining is True
    assert admission.refusal(now=0.0) is Refusal.DRAINING
    assert admission.refusal(now=1e9) is Refusal.DRAINING
