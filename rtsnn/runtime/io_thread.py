"""The session's I/O thread: a plain loop beside the compute thread, kept out of its ticks.

Every pass (about every 50 ms, and once more after the compute thread has finished): collect the
learner's heavy ``prepare`` from its worker thread when done and, last in the pass, start the next
when the learner wants one (live pace only; at pace max the compute thread runs it inline), drain the output ring into
``outputs.f64`` and the recording, hand control messages to the learner
(:func:`dispatch_control`; not while a ``prepare`` runs: they wait for the next pass), move the events stages noted into the recording
(:func:`drain_stage_events`), ask stages whether they failed (:func:`check_failures`), and every
``session.metrics_interval_s`` append one JSON line of interval metrics to ``metrics.jsonl``.
The session monitor, when there is one, is serviced from the same loop every
``monitor.publish_period_s`` (its errors are counted in ``monitor.counters["errors"]``, never
fatal: a viewer-side problem does not end the session).

The loop shares the GIL with the compute thread, so it stays out of the ticks
(:data:`rtsnn.clock.SLACK`): it sleeps with timeouts that end just after a tick, and each piece
of work waits for room before the next wake-up of the compute thread.

An exception here stops the session (``session.io_error``; ``run()`` raises it): outputs must
not vanish silently.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

import numpy as np

from rtsnn.clock import SLACK
from rtsnn.runtime.folder import owner_only
from rtsnn.runtime.metrics import json_safe

log = logging.getLogger("rtsnn.session")

PASS_S = 0.05  # the longest sleep between two passes


def io_thread_main(session: Any) -> None:
    """The thread's body: :func:`io_loop` to the end; an error stops the session."""
    try:
        io_loop(session)
    except BaseException as err:  # the session stops and run() raises it: outputs must not vanish
        session.io_error = err
        session.stop_event.set()


def io_loop(session: Any) -> None:
    assert session.folder is not None
    interval = session.cfg.session.metrics_interval_s
    metrics_path = session.folder / "metrics.jsonl"
    outputs_path = session.folder / "outputs.f64"
    prev_hist = session.stats.hist.copy()
    t_start = time.monotonic()
    learner = session.learner
    io_done = session._io_done
    # at pace max the compute thread runs prepare / apply inline: a second prepare here would
    # race it (e.g. a ridge solve read half-installed state)
    prepares = learner is not None and session.cfg.session.pace != "max"
    ready = session.learner_ready
    handoff = session.handoff  # rtsnn.runtime.loop.PrepareHandoff
    monitor = session.monitor
    slack = SLACK
    pool = ThreadPoolExecutor(1, thread_name_prefix="rtsnn-prepare") if prepares else None
    preparing: Future | None = None
    last_prepare: Future | None = None  # one that was still running when the run ended
    try:
        with open(metrics_path, "a", buffering=1, opener=owner_only) as mf, \
                open(outputs_path, "ab", opener=owner_only) as of:
            next_t = time.monotonic() + interval
            next_mon = time.monotonic()
            # at least one pass, ending with the final drain: a short run may be over before this
            # thread gets here, and its rows must still reach outputs.f64
            while True:
                now = time.monotonic()
                due = now + PASS_S
                if preparing is None:  # the metrics line waits for a running prepare (not due meanwhile)
                    due = min(due, next_t)
                if monitor is not None:
                    due = min(due, next_mon)
                io_done.wait(slack.aligned(max(1e-3, due - now)))
                done = io_done.is_set()
                if preparing is not None and (done or preparing.done()):
                    wait_for([preparing])  # at the end: waited for
                    finished, preparing = preparing, None
                    if done:
                        last_prepare = finished  # its error is raised after the final drain
                    else:
                        finished.result()  # an exception in prepare stops the session, as it would inline
                if monitor is not None and (time.monotonic() >= next_mon or done):
                    try:
                        monitor.service(session)  # waits for room itself, piece by piece
                    except Exception:  # noqa: BLE001 - a viewer-side problem never ends the session
                        monitor.counters["errors"] += 1
                    next_mon = max(next_mon + monitor.publish_period_s, time.monotonic())
                slack.wait()
                write_rows(session, of)
                slack.wait()
                if preparing is None:  # control reaches the learner between its prepares, never during one
                    dispatch_control(session)
                drain_stage_events(session)
                check_failures(session)
                if preparing is None and (time.monotonic() >= next_t or done):  # learner.stats() likewise
                    next_t += interval
                    slack.wait()
                    hist = session.stats.hist.copy()
                    line = interval_metrics(session, hist - prev_hist, time.monotonic() - t_start)
                    prev_hist = hist
                    mf.write(json.dumps(json_safe(line), allow_nan=False) + "\n")
                if done:
                    write_rows(session, of)
                    drain_stage_events(session)  # before run() closes the recording
                    break
                # the next prepare last in the pass, so that control and metrics came between the two
                if pool is not None and preparing is None and handoff.state == "idle" and learner.wants_apply():
                    handoff.state = "running"
                    preparing = pool.submit(_prepare, learner, handoff, ready, slack)
            if last_prepare is not None:
                last_prepare.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)  # a prepare still running finishes before the learner is closed


def _prepare(learner: Any, handoff: Any, ready: Any, slack: Any) -> None:
    """The worker thread: the learner's ``prepare``, started in a window of the compute
    thread's slack, then the hand-off to the compute thread (``"ready"``: it applies the update
    at its first tick with budget left; ``"idle"``: the learner has nothing to apply)."""
    slack.wait()
    learner.prepare()
    handoff.state = "ready" if ready is None or ready() else "idle"


def write_rows(session: Any, outputs_file: Any) -> None:
    """The output ring's rows to ``outputs.f64`` (little-endian float64) and the recording."""
    rows = session.out_ring.drain()
    if len(rows):
        rows.astype("<f8").tofile(outputs_file)
    rec = session.recording
    if rec is not None:
        rec.drain()
        rec.outputs_rows(rows)


def dispatch_control(session: Any) -> None:
    """Hand control messages (pause / resume learning, learning rate) that any input received
    (the local control socket, an MQTT control topic: :class:`rtsnn.protocols.ControlInput`) to
    the learner; counted either way, and answered (applied, or refused with the reason) on
    channels that have a reply path (:class:`rtsnn.protocols.RepliesToControl`: the control
    socket)."""
    from rtsnn.control_messages import apply_control

    channels = session.parts.control_inputs
    if session.control is not None:
        channels = [*channels, (session.control, session.control.reply)]
    learner = session.learner
    for channel, reply in channels:
        for msg in channel.poll_control():
            why = ""
            if learner is None:
                ok, why = False, "the session has no learner (its config has no learner section)"
            else:
                try:
                    ok = apply_control(msg, learner)
                except (ValueError, TypeError) as err:  # refused by the learner: counted, never fatal
                    ok, why = False, str(err)[:200]
                if not ok and not why:
                    kind = session.cfg.learner.kind if session.cfg.learner is not None else type(learner).__name__
                    why = f"the learner ({kind}) does not take {msg.command}"
            if not ok:
                session.last_control_error = why
            session.counters["control_applied" if ok else "control_ignored"] += 1
            if reply is not None and msg.reply_to is not None:
                reply(msg, ok, why)  # non-blocking; a client gone is counted by the channel
            if session.recording is not None:
                text = msg.command + ("" if msg.value is None else f" {msg.value}") + \
                    ("" if ok else f" (ignored: {why})")
                session.recording.event(text, msg.t_s)


def check_failures(session: Any) -> None:
    """The first stage that reports a failure (:class:`rtsnn.protocols.MayFail`) ends the run;
    a stage marked optional reports none (e.g. ``MqttSink(optional=True)``). Also called once
    after the run."""
    if session.failed is not None:
        return
    for role, stage in session.parts.may_fail:
        why = stage.failure()
        if why:
            log.error("session %s: %s failed: %s", session.cfg.session.name, role, why)
            session._fail(f"{role}: {why}")
            return


def drain_stage_events(session: Any) -> None:
    """Events stages noted (:class:`rtsnn.protocols.TakesEvents`) go into the recording, counted."""
    for _role, stage in session.parts.takes_events:
        for text, t_s in stage.take_events():
            session.stage_events += 1
            if session.recording is not None:
                session.recording.event(str(text), float(t_s))


def interval_metrics(session: Any, hist_delta: np.ndarray, elapsed_s: float) -> dict[str, Any]:
    """One line of ``metrics.jsonl``: the counters, compute / e2e / tick latency over the
    interval, the source's and the learner's stats."""
    out: dict[str, Any] = {"t_s": round(elapsed_s, 3), **dict(session.counters)}
    for name in ("compute", "e2e", "tick"):
        out[f"{name}_us"] = session.stats.summary_us(name, hist=hist_delta)
    out["source"] = session.source.stats()
    if session.learner is not None:
        out["learner"] = session.learner.stats()
    return out
