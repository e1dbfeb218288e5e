"""``rtsnn events publish FILE`` and ``rtsnn events info FILE``."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
from typing import Any

from rtsnn.stream.speed import parse_speed


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("events", help="event cameras: publish a recording over LSL, inspect files")
    sub = p.add_subparsers(dest="events_cmd", required=True)
    pub = sub.add_parser("publish", help="stream an event file (EVT2/EVT3/DAT/AEDAT4 with rtsnn-dvs, or .npy) "
                                         "as an rtsnn LSL event stream")
    pub.add_argument("file")
    pub.add_argument("--name", default="rtsnn-events", help="LSL stream name (default rtsnn-events)")
    pub.add_argument("--speed", default="1.0", help="playback speed factor, or 'max' (default 1.0)")
    pub.add_argument("--loop", action="store_true", help="repeat the recording until interrupted")
    pub.add_argument("--chunk-ms", type=float, default=1.0, help="camera time per LSL chunk (default 1 ms)")
    pub.add_argument("--duration", type=float, help="stop after this many seconds")
    pub.add_argument("--wait-consumer", type=float, default=0.0,
                     help="wait up to this many seconds for an inlet before sending (default 0)")
    pub.add_argument("--json", action="store_true", help="print one JSON line with the summary at the end")
    pub.set_defaults(func=cmd_publish)
    info = sub.add_parser("info", help="decode an event file and print a JSON summary")
    info.add_argument("file")
    info.set_defaults(func=cmd_info)


def cmd_publish(args: argparse.Namespace) -> int:
    from rtsnn.events.publisher import EventPublisher, load_events
    from rtsnn.jsonout import json_safe

    speed = parse_speed(args.speed, what="--speed")
    if not (math.isfinite(args.chunk_ms) and args.chunk_ms > 0):
        raise ValueError(f"--chunk-ms must be a finite number > 0, got {args.chunk_ms}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ValueError(f"--duration must be a finite number of seconds > 0, got {args.duration}")
    if not (math.isfinite(args.wait_consumer) and args.wait_consumer >= 0):
        raise ValueError(f"--wait-consumer must be a finite number of seconds >= 0, got {args.wait_consumer}")
    loaded = load_events(args.file)
    pub = EventPublisher(loaded.events, loaded.width, loaded.height, name=args.name, source=loaded.source,
                         speed=speed, loop=args.loop, chunk_us=max(1, int(round(args.chunk_ms * 1000))))
    pub.open()
    if args.wait_consumer > 0:
        pub.wait_for_consumer(args.wait_consumer)
    stopping = {"now": False}
    old = signal.signal(signal.SIGINT, lambda *_: stopping.__setitem__("now", True))
    try:
        summary = pub.run(duration_s=args.duration, stop=lambda: stopping["now"])
    finally:
        signal.signal(signal.SIGINT, old)
        pub.close()
    summary.update({"file": os.path.normpath(args.file), "stream": args.name, "repairs": loaded.repairs})
    if args.json:
        print(json.dumps(json_safe(summary), allow_nan=False))
    else:
        print(f"published {summary['events_sent']} events in {summary['chunks']} chunks "
              f"({summary['wall_s']:.2f} s, {summary['loops']} loop(s))")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rtsnn.events.publisher import load_events, summarize
    from rtsnn.jsonout import json_safe

    print(json.dumps(json_safe(summarize(os.path.normpath(args.file), load_events(args.file))), allow_nan=False))
    return 0
