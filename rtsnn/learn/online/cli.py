"""``rtsnn control``: pause, resume or change the learning rate of a running session's learner.

    rtsnn control pause  --session NAME [--out-dir sessions]
    rtsnn control resume --session NAME
    rtsnn control rate 1e-4 --session NAME

The message goes over the session's local control socket (:mod:`rtsnn.runtime.control`);
MQTT users send the same payloads on ``rtsnn/<session>/control``.
"""

from __future__ import annotations

import argparse

COMMANDS = {"pause": "pause_learning", "resume": "resume_learning", "rate": "set_learning_rate"}


def cmd_control(args: argparse.Namespace) -> int:
    from rtsnn.runtime.control import find_session, send_control

    payload: dict = {"cmd": COMMANDS[args.action]}
    if args.action == "rate":
        if args.value is None:
            raise ValueError("rtsnn control rate needs the new learning rate, e.g. rtsnn control rate 1e-4 --session NAME")
        payload["value"] = args.value
    elif args.value is not None:
        raise ValueError(f"rtsnn control {args.action} takes no value (got {args.value})")
    folder = find_session(args.session, args.out_dir)
    send_control(folder, payload)
    print(f"sent {payload} to {folder}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("control", help="pause / resume learning or set its rate in a running session")
    p.add_argument("action", choices=sorted(COMMANDS))
    p.add_argument("value", nargs="?", type=float, default=None, help="the learning rate (rate only)")
    p.add_argument("--session", required=True, help="the session's name (session.name in its config)")
    p.add_argument("--out-dir", default="sessions", help="the sessions' folder (session.out_dir)")
    p.set_defaults(func=cmd_control)
