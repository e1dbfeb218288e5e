"""``rtsnn control``: pause, resume or change the learning rate of a running session's learner.

    rtsnn control pause  --session NAME [--out-dir sessions] [--timeout 2]
    rtsnn control resume --session NAME
    rtsnn control rate 1e-4 --session NAME

The message goes over the session's local control socket (:mod:`rtsnn.runtime.control`) and
the command waits for the session's answer: whether its learner applied the message or
refused it, and why. Exit status:

- 0: applied;
- 1: refused by the session (the learner refused the value, the session has no learner,
  the learner does not take that command), with the reason on stderr;
- 2: not sent: a bad value, no running session of that name under ``--out-dir`` (the live
  ones are listed), or the session's process is gone;
- 3: sent, but no answer within ``--timeout`` seconds (the session ended meanwhile, or its
  I/O thread is stuck).

MQTT users send the same payloads on ``rtsnn/<session>/control`` (no answer there).
"""

from __future__ import annotations

import argparse
import math
import sys

COMMANDS = {"pause": "pause_learning", "resume": "resume_learning", "rate": "set_learning_rate"}
EXIT_APPLIED, EXIT_REFUSED, EXIT_NO_ANSWER = 0, 1, 3


def cmd_control(args: argparse.Namespace) -> int:
    from rtsnn.runtime.control import find_session, request_control

    payload: dict = {"cmd": COMMANDS[args.action]}
    if args.action == "rate":
        if args.value is None:
            raise ValueError("rtsnn control rate needs the new learning rate, "
                             "e.g. rtsnn control rate 1e-4 --session NAME")
        payload["value"] = args.value
    elif args.value is not None:
        raise ValueError(f"rtsnn control {args.action} takes no value (got {args.value})")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"rtsnn control: --timeout must be a finite number of seconds > 0, got {args.timeout}")
    folder = find_session(args.session, args.out_dir)
    what = payload["cmd"] + (f" {args.value:g}" if args.action == "rate" else "")
    answer = request_control(folder, payload, args.timeout)
    if answer is None:
        print(f"rtsnn: control: no answer from session {args.session!r} ({folder}) within {args.timeout:g} s "
              f"to {what}: the session may have just ended, or its I/O thread is stuck", file=sys.stderr)
        return EXIT_NO_ANSWER
    if answer.get("ok") is True:
        print(f"applied: {what} (session {args.session!r}, {folder})")
        return EXIT_APPLIED
    print(f"rtsnn: control: refused: {what} (session {args.session!r}): {answer.get('reason') or 'no reason given'}",
          file=sys.stderr)
    return EXIT_REFUSED


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "control", help="pause / resume learning or set its rate in a running session (waits for its answer)",
        description="Send one control message to a running session and print whether its learner applied or "
                    "refused it. Exit status: 0 applied, 1 refused (reason printed), 2 not sent (bad value, "
                    "no such running session), 3 no answer within --timeout.")
    p.add_argument("action", choices=sorted(COMMANDS))
    p.add_argument("value", nargs="?", type=float, default=None, help="the learning rate (rate only)")
    p.add_argument("--session", required=True, help="the session's name (session.name in its config)")
    p.add_argument("--out-dir", default="sessions", help="the sessions' folder (session.out_dir)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the session's answer (default 2)")
    p.set_defaults(func=cmd_control)
