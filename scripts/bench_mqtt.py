"""MQTT sink benchmark on loopback: publish-to-receive latency and sustained command rate.

Starts a private mosquitto on a free 127.0.0.1 port, an MqttSink, and a paho subscriber in
this process (same machine, so the LSL clock is shared).

1. latency: ``--ticks`` commands emitted at ``--rate-hz`` from a paced thread (like the
   session's compute thread); for each received command, latency = receive time (LSL clock,
   in paho's callback) - ``t_emit`` in the payload (LSL clock at ``emit``). Reports p50/p99/max
   and the cost of ``emit`` itself (what the tick pays).
2. sustained rate: ``--burst`` commands emitted back to back (no pacing) with a queue large
   enough to hold them; rate = commands received / time from first emit to last receipt.

Prints one JSON line.  Example:  python scripts/bench_mqtt.py --ticks 5000 --rate-hz 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time

import msgpack
import numpy as np
import paho.mqtt.client as mqtt
import pylsl

from rtsnn.stream.mqtt_common import PrivateBroker
from rtsnn.stream.mqtt_sink import MqttSink, wait_until


def _subscriber(port: int, topic: str, fmt: str, out: list):
    dec = json.loads if fmt == "json" else msgpack.unpackb

    def on_message(cl, u, m):
        t_rx = pylsl.local_clock()
        d = dec(m.payload)
        out.append((d["seq"], t_rx - d["t_emit"]))

    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.subscribe(topic)
    c.loop_start()
    if not ready.wait(5):
        raise RuntimeError("subscriber did not subscribe")
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=5000)
    ap.add_argument("--rate-hz", type=float, default=1000.0)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--n-out", type=int, default=2)
    ap.add_argument("--format", choices=("json", "msgpack"), default="json")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        broker = PrivateBroker(d).start()
        try:
            values = np.linspace(-1, 1, a.n_out).astype(np.float32)
            # ---- 1. paced latency
            got: list = []
            sink = MqttSink("bench", port=broker.port, payload_format=a.format, ttl_s=1.0, queue_size=1024)
            sink.open([f"y{i}" for i in range(a.n_out)], ["1"] * a.n_out)
            assert wait_until(lambda: sink.connected, 5)
            sub = _subscriber(broker.port, sink.command_topic, a.format, got)
            emit_ns = np.zeros(a.ticks, np.int64)
            dt_ns = int(1e9 / a.rate_hz)
            t_next = time.perf_counter_ns()
            for k in range(a.ticks):
                t_next += dt_ns
                while (rem := t_next - time.perf_counter_ns()) > 0:
                    if rem > 200_000:
                        time.sleep((rem - 200_000) * 1e-9)
                t0 = time.perf_counter_ns()
                sink.emit(values, 0.0)
                emit_ns[k] = time.perf_counter_ns() - t0
            wait_until(lambda: len(got) >= a.ticks, 5)
            paced = sink.stats()
            sub.loop_stop()
            sub.disconnect()
            sink.close()
            lat_us = np.array([x[1] for x in got]) * 1e6
            # ---- 2. sustained rate
            got2: list = []
            sink2 = MqttSink("bench2", port=broker.port, payload_format=a.format, ttl_s=60.0, queue_size=a.burst)
            sink2.open([f"y{i}" for i in range(a.n_out)], ["1"] * a.n_out)
            assert wait_until(lambda: sink2.connected, 5)
            sub2 = _subscriber(broker.port, sink2.command_topic, a.format, got2)
            t0 = time.perf_counter()
            for _ in range(a.burst):
                sink2.emit(values, 0.0)
            t_emitted = time.perf_counter() - t0
            wait_until(lambda: len(got2) >= a.burst, 60, 0.001)
            t_all = time.perf_counter() - t0
            burst = sink2.stats()
            sub2.loop_stop()
            sub2.disconnect()
            sink2.close()
        finally:
            broker.stop()
    out = {
        "bench": "mqtt_loopback", "format": a.format, "n_out": a.n_out,
        "paced": {"rate_hz": a.rate_hz, "sent": int(paced["produced"]), "received": len(got),
                  "dropped": int(paced["dropped_overflow"] + paced["dropped_expired"]),
                  "latency_us": {"p50": round(float(np.percentile(lat_us, 50)), 1) if len(lat_us) else None,
                                 "p99": round(float(np.percentile(lat_us, 99)), 1) if len(lat_us) else None,
                                 "max": round(float(lat_us.max()), 1) if len(lat_us) else None},
                  "emit_us": {"p50": round(float(np.percentile(emit_ns, 50)) / 1e3, 2),
                              "p99": round(float(np.percentile(emit_ns, 99)) / 1e3, 2),
                              "max": round(float(emit_ns.max()) / 1e3, 1)}},
        "sustained": {"sent": a.burst, "received": len(got2), "emit_s": round(t_emitted, 4),
                      "total_s": round(t_all, 3), "commands_per_s": round(len(got2) / t_all, 1),
                      "dropped": int(burst["dropped_overflow"] + burst["dropped_expired"])},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
