"""What a session reports: :func:`session_summary` at the end of a run (``summary.json``,
``rtsnn run --json``) and :func:`session_status`, a snapshot safe to take from any thread while
it runs (the status lines, ``rtsnn.Session.status()``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rtsnn.runtime.build import model_graph_summary
from rtsnn.runtime.loop import STAGES, r2_from_acc


def session_summary(session: Any) -> dict[str, Any]:
    """The run's summary (see docs/session_folder.md); not yet made JSON-safe."""
    c = session.counters
    ticks = max(c["ticks"], 1)
    stats = session.stats
    stage = {n: stats.summary_us(n) for n in STAGES + ("compute", "tick", "lateness")}
    e2e = stats.summary_us("e2e")
    age = stats.summary_us("input_age")
    src = session.source.stats()
    dropped = int(src.get("dropped_samples", 0)) - session.dropped_in_warmup + int(session.out_ring.dropped)
    out = {
        "session": session.cfg.session.name,
        "folder": str(session.folder),
        "ticks": c["ticks"],
        "dt_s": session.dt_s,
        "e2e_latency_us": {k: e2e[k] for k in ("p50", "p99", "p999", "max", "n")},
        # e2e = input age (before the session had the sample) + the tick (inside it)
        "input_age_us": {k: age[k] for k in ("p50", "p99", "p999", "max", "n")},
        # samples that reached the session more than one tick after their timestamp: late
        # delivery a percentile hides (p99 jumps by a whole tick once 1 % of them are late)
        "input_age_over_one_tick": stats.fraction_above("input_age", session.dt_s * 1e9),
        "stage_latency_us": stage,
        "deadline_misses": c["deadline_misses"],
        "deadline_miss_rate": c["deadline_misses"] / ticks,
        # misses by cause: woken later than the tick's work took, or work longer than the slack
        "deadline_miss_causes": {"late_wake": c["misses_late_wake"], "slow_tick": c["misses_slow_tick"]},
        **bare_timer_figures(session.bare, c["deadline_misses"], c["ticks"]),
        "skipped_ticks": c["skipped_ticks"],
        "dropped_samples": dropped,
        "dropped_in_warmup": session.dropped_in_warmup,
        "repaired_samples": int(src.get("repaired_values", 0)),
        "gap_ticks": c["gap_ticks"],
        "samples_in": c["samples_in"],
        "learn_applied": c["learn_applied"],
        "learn_deferred": c["learn_deferred"],
        "eval_ticks": c["eval_ticks"],
        "r2": r2_from_acc(session.r2_acc),
        "source": src,
        "outputs_dropped": int(session.out_ring.dropped),
        "realtime": session.realtime_applied,
        # the session's other threads while it ran: fifo:<priority> (<n> threads) or none
        "background_realtime": session.background_realtime,
        # the other threads keeping their Python work out of the ticks (rtsnn.clock.TickSlack);
        # None: pace max, or another session of this process held the slack
        "background_slack": session.slack,
        "stopped_by": session.stopped_by,  # None: ran to its duration or the source's end
        "failed": session.failed,  # None, or why the run failed (also in the folder's FAILED file)
        "warmup_tick_us": session.warmup_tick_us,  # median tick work in warm-up vs budget_us / dt_s
        "warnings": list(session.warnings),
        "stage_events": session.stage_events,  # e.g. impostor streams an LSL source refused
        "model_graph": model_graph_summary(session.model),  # the nodes that ran, in evaluation order
    }
    if session.teacher is not None:
        out["teacher"] = session.teacher.stats()
    if session.learner is not None:
        out["learner"] = session.learner.stats()
    tap = session.monitor.sink if session.monitor is not None else None
    out["sinks"] = [s.stats() for s in session.sinks if s is not tap]
    if session.monitor is not None:
        out["monitor"] = dict(session.monitor.counters)
    out["pace"] = session.cfg.session.pace
    out["control"] = {"applied": c["control_applied"], "ignored": c["control_ignored"],
                      "last_refusal": session.last_control_error,
                      **(session.control.stats() if session.control is not None
                         else {"socket": session.control_error})}
    if session.recording is not None:
        out["recording"] = session.recording.stats()
    return out


def bare_timer_figures(bare: dict[str, Any] | None, misses: int, ticks: int) -> dict[str, Any]:
    """The machine's floor next to the session's misses: ``bare_timer_s`` (0: not measured),
    ``bare_timer_ticks`` / ``bare_timer_misses`` / ``bare_timer_miss_rate`` (misses / ticks of
    :func:`rtsnn.runtime.loop.bare_timer`, None when not measured) and ``deadline_miss_ratio``
    = session miss rate / bare miss rate (None when either has no ticks or the bare timer
    missed nothing: read the counts then)."""
    if not bare:
        return {"bare_timer_s": 0.0, "bare_timer_ticks": None, "bare_timer_misses": None,
                "bare_timer_miss_rate": None, "bare_timer_skipped": None, "bare_timer_lateness_p99_us": None,
                "deadline_miss_ratio": None}
    rate = bare["misses"] / bare["ticks"] if bare["ticks"] else None
    ratio = (misses / ticks) / rate if rate and ticks else None
    return {"bare_timer_s": bare["s"], "bare_timer_ticks": bare["ticks"], "bare_timer_misses": bare["misses"],
            "bare_timer_miss_rate": rate, "bare_timer_skipped": bare["skipped"],
            "bare_timer_lateness_p99_us": bare["lateness_p99_us"], "deadline_miss_ratio": ratio}


def session_status(session: Any, hist_since: np.ndarray | None = None,
                   hist_now: np.ndarray | None = None) -> dict[str, Any]:
    """See :meth:`rtsnn.runtime.session.Session.status`."""
    c = session.counters
    hist = session.stats.hist.copy() if hist_now is None else hist_now
    since_snapshot = False
    if hist_since is not None:
        delta = hist - hist_since
        since_snapshot = not (delta < 0).any()  # negative: the warm-up reset cleared the counts since
        if since_snapshot:
            hist = delta
    e2e = session.stats.summary_us("e2e", hist=hist)
    try:
        src = session.source.stats()
    except Exception as err:  # noqa: BLE001 - a status report must not raise
        src = {"error": f"{type(err).__name__}: {err}"}
    health = {"samples": src.get("samples"), "repaired": src.get("repaired_values"),
              # as the summary counts them: start-up backlog dropped in warm-up apart
              "dropped": None if src.get("dropped_samples") is None
              else int(src["dropped_samples"]) - session.dropped_in_warmup}
    for key in ("connected", "in_gap", "finished"):
        if key in src:
            health[key] = src[key]
    err = session.error or session.io_error
    t0 = session._t_start
    return {"running": session.running, "elapsed_s": 0.0 if t0 is None else round(time.monotonic() - t0, 3),
            "ticks": c["ticks"], "deadline_misses": c["deadline_misses"],
            "e2e_p99_us": e2e["p99"], "e2e_p99_since_snapshot": since_snapshot,
            "r2": r2_from_acc(session.r2_acc.copy()), "source": health,
            "folder": str(session.folder) if session.folder is not None else None,  # normalised when made
            "stopped_by": session.stopped_by, "failed": session.failed,
            "error": None if err is None else f"{type(err).__name__}: {err}"}
