"""MQTT sink against a real mosquitto on a free loopback port (no running broker assumed)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import import_or_skip

from rtsnn.stream.mqtt_common import free_port
from rtsnn.stream.mqtt_sink import MqttSink, command_ring, wait_until

mqtt = import_or_skip("paho.mqtt.client")


class Listener:
    """A paho subscriber collecting (topic, payload, retain) in a background thread."""

    def __init__(self, port: int, topic: str = "rtsnn/#"):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda cl, u, m: self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic)
        self.c.loop_start()
        assert self.ready.wait(3), "test subscriber could not subscribe"

    def on(self, suffix: str) -> list[tuple[str, bytes, bool]]:
        return [m for m in list(self.msgs) if m[0].endswith(suffix)]

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _decode(payload: bytes, fmt: str):
    return json.loads(payload) if fmt == "json" else msgpack.unpackb(payload)


# ---------------------------------------------------------------- ring (no broker)
def _push(ring, values, t_source, t_emit):
    """What MqttSink.emit queues: seq, t_source, t_emit, values."""
    ring.push(np.r_[float(ring.head), t_source, t_emit, values])


def _take(ring, row) -> bool:
    """What the publisher takes: the oldest surviving row."""
    return ring.pop_into(row[None, :]) == 1


def test_ring_drops_oldest_and_counts():
    ring = command_ring(4, 2)
    for k in range(10):
        _push(ring, np.array([k, -k], np.float32), float(k), 100.0 + k)
    assert ring.lost() == 6 and len(ring) == 4
    row = np.zeros(5)
    got = []
    while _take(ring, row):
        got.append((int(row[0]), row[3], row[1]))
    assert got == [(6, 6.0, 6.0), (7, 7.0, 7.0), (8, 8.0, 8.0), (9, 9.0, 9.0)]
    assert ring.dropped == 6 and ring.lost() == 6 and len(ring) == 0


@settings(max_examples=60, deadline=None)
@given(cap=st.integers(1, 6), ops=st.lists(st.integers(0, 5), min_size=1, max_size=40))
def test_ring_accounting_property(cap, ops):
    """Interleaved pushes (op>0: push op rows) and takes (op=0: take all): every pushed row is
    either taken exactly once, in order, or counted as dropped; the survivors are the newest."""
    ring = command_ring(cap, 1)
    row = np.zeros(4)
    taken: list[int] = []
    for op in ops:
        if op:
            for _ in range(op):
                _push(ring, np.zeros(1), 0.0, 0.0)
        else:
            before = ring.head
            batch = []
            while _take(ring, row):
                batch.append(int(row[0]))
            assert len(batch) <= cap
            assert batch == list(range(before - len(batch), before))  # take-all yields the newest, in order
            taken += batch
    assert taken == sorted(set(taken))
    assert len(taken) + ring.lost() + len(ring) == ring.head


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="session .* must not contain"):
        MqttSink("a/b")
    with pytest.raises(ValueError, match="session .* must not contain"):
        MqttSink("a#")
    with pytest.raises(ValueError, match="payload_format"):
        MqttSink("s", payload_format="xml")
    with pytest.raises(ValueError, match="ttl_s"):
        MqttSink("s", ttl_s=0)
    with pytest.raises(ValueError, match="port"):
        MqttSink("s", port=70000)
    with pytest.raises(ValueError, match="queue_size"):
        MqttSink("s", queue_size=0)
    s = MqttSink("s")
    with pytest.raises(ValueError, match="2 channel labels but 1 units"):
        s.open(["a", "b"], ["m"])


def test_password_without_username_refused(monkeypatch):
    monkeypatch.delenv("RTSNN_MQTT_USERNAME", raising=False)
    monkeypatch.setenv("RTSNN_MQTT_PASSWORD", "pw-only-secret")
    s = MqttSink("s", port=free_port())
    with pytest.raises(ValueError, match="RTSNN_MQTT_PASSWORD is set but RTSNN_MQTT_USERNAME is not") as ei:
        s.open(["a"], ["m"])
    assert "pw-only-secret" not in str(ei.value)


# ---------------------------------------------------------------- with a broker
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_round_trip_and_retained_status(broker, fmt):
    sink = MqttSink("rt", port=broker.port, payload_format=fmt, ttl_s=0.5)
    sink.open(["vx", "vy"], ["m/s", "m/s"])
    try:
        assert wait_until(lambda: sink.connected, 5), sink.stats()
        lis = Listener(broker.port)  # connects after the sink: sees retained status and meta
        assert wait_until(lambda: lis.on("/status") and lis.on("/meta"), 3)
        assert lis.on("/status")[-1][1:] == (b"online", True)
        meta = json.loads(lis.on("/meta")[-1][1])
        assert meta["labels"] == ["vx", "vy"] and meta["units"] == ["m/s", "m/s"] and meta["payload_format"] == fmt
        for k in range(50):
            sink.emit(np.array([k, -0.5 * k], np.float32), 1000.0 + k)
        assert wait_until(lambda: len(lis.on("/command")) == 50, 5), sink.stats()
        cmds = [_decode(p, fmt) for _, p, _ in lis.on("/command")]
        assert [c["seq"] for c in cmds] == list(range(50))
        assert [c["values"] for c in cmds] == [[float(k), -0.5 * k] for k in range(50)]
        assert [c["t_source"] for c in cmds] == [1000.0 + k for k in range(50)]
        assert all(c["ttl_s"] == 0.5 and c["t_emit"] > 0 for c in cmds)
        assert lis.on("/command")[0][0] == "rtsnn/rt/command"
        s = sink.stats()
        assert (s["produced"], s["published"], s["dropped_overflow"], s["dropped_expired"]) == (50, 50, 0, 0)
    finally:
        sink.close()
    assert wait_until(lambda: lis.on("/status")[-1][1] == b"offline", 3)
    lis.stop()


def test_every_n_ticks_and_nonfinite_outputs(broker):
    sink = MqttSink("dec", port=broker.port, every_n_ticks=3)
    sink.open(["a"], ["1"])
    lis = Listener(broker.port, "rtsnn/dec/command")
    try:
        assert wait_until(lambda: sink.connected, 5)
        for k in range(9):
            sink.emit(np.array([np.nan if k == 5 else k], np.float32), 0.0)
        assert wait_until(lambda: len(lis.msgs) == 3, 3), sink.stats()
        vals = [json.loads(p)["values"] for _, p, _ in lis.msgs]
        assert vals == [[2.0], [None], [8.0]]  # NaN is published as null, never as invalid JSON
    finally:
        sink.close()
        lis.stop()


SINK_CHILD = r"""
import sys, time, numpy as np
from rtsnn.stream.mqtt_sink import MqttSink, wait_until
s = MqttSink("will", port=int(sys.argv[1]), keepalive_s=1)
s.open(["a"], ["1"])
assert wait_until(lambda: s.connected, 5)
s.emit(np.zeros(1, np.float32), 0.0)
print("ready", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_client_dies(broker):
    proc = subprocess.Popen([sys.executable, "-c", SINK_CHILD, str(broker.port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        lis = Listener(broker.port, "rtsnn/will/status")
        assert wait_until(lambda: lis.msgs and lis.msgs[-1][1] == b"online", 3)
        proc.send_signal(signal.SIGKILL)  # no clean disconnect: the broker must publish the will
        proc.wait(5)
        assert wait_until(lambda: lis.msgs[-1][1] == b"offline", 5), lis.msgs
        lis.stop()
        late = Listener(broker.port, "rtsnn/will/status")  # a newcomer sees it retained
        assert wait_until(lambda: late.msgs, 3)
        assert late.msgs[-1][1:] == (b"offline", True)
        late.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broker_dies_and_returns(broker):
    """Commands emitted while the broker is gone are dropped and counted, emit never waits,
    and publishing resumes by itself when the broker comes back on the same port.
    (How long an emit takes, with and without a broker: scripts/bench_timing_bounds.py.)"""
    sink = MqttSink("bd", port=broker.port, queue_size=32, ttl_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2)
    sink.open(["a"], ["1"])
    assert wait_until(lambda: sink.connected, 5)
    stop = threading.Event()
    k = [0]

    def tick_loop():  # a stand-in for the compute thread: ~1 kHz, never blocked by the broker
        v = np.zeros(1, np.float32)
        while not stop.is_set():
            v[0] = k[0]
            sink.emit(v, 0.0)
            k[0] += 1
            time.sleep(0.001)

    th = threading.Thread(target=tick_loop, daemon=True)
    th.start()
    lis = Listener(broker.port, "rtsnn/bd/command")
    try:
        assert wait_until(lambda: len(lis.msgs) > 20, 10)
        lis.stop()
        broker.stop()
        assert wait_until(lambda: not sink.connected, 10), sink.stats()
        produced_at_loss = sink.stats()["produced"]
        # the session goes on without a broker: ticks keep emitting, and what cannot be sent
        # overflows the 32-command queue and is counted
        assert wait_until(lambda: sink.stats()["produced"] > produced_at_loss + 100, 10), sink.stats()
        down = sink.stats()
        assert down["dropped_overflow"] > 0 and down["connected"] is False and down["disconnects"] == 1
        # emit with no broker is an enqueue: a burst of emits from this thread all count as produced
        before = sink.stats()["produced"]
        for _ in range(1000):
            sink.emit(np.zeros(1, np.float32), 0.0)
        assert sink.stats()["produced"] >= before + 1000
        broker.start()
        assert wait_until(lambda: sink.stats()["connects"] == 2, 10), sink.stats()
        lis2 = Listener(broker.port, "rtsnn/bd/command")
        assert wait_until(lambda: len(lis2.msgs) > 20, 10), sink.stats()
        seqs = [json.loads(p)["seq"] for _, p, _ in lis2.msgs]
        assert min(seqs) > produced_at_loss  # fresh commands, not the stale backlog
        lis2.stop()
    finally:
        stop.set()
        th.join(2)
        time.sleep(0.2)
        s = sink.stats()
        sink.close()
    assert s["dropped_overflow"] + s["dropped_expired"] > 0
    # every produced command is accounted for (published, dropped or lost with the connection)
    assert s["produced"] == (s["published"] + s["dropped_overflow"] + s["dropped_expired"]
                             + s["publish_errors"] + s["queued"])


def test_emit_returns_while_the_publisher_is_stuck_in_a_publish(broker, monkeypatch):
    """emit never waits for the broker: with the sink's loop thread held inside a command
    publish that never completes, emits from the calling thread all return, and the ring
    accounts for every one (the oldest overwritten), while the publish is still stuck."""
    import asyncio

    import aiomqtt

    entered = threading.Event()  # the loop thread reached the stuck publish
    released = threading.Event()  # set only if the stuck publish ever returned (it must not)
    real_publish = aiomqtt.Client.publish

    async def stuck_publish(self, topic, payload=None, *args, **kwargs):
        if not str(topic).endswith("/command"):  # status and meta go through for real
            return await real_publish(self, topic, payload, *args, **kwargs)
        entered.set()
        await asyncio.Event().wait()  # never set: the loop thread cannot take another row
        released.set()

    monkeypatch.setattr(aiomqtt.Client, "publish", stuck_publish)
    capacity, n_emits = 32, 5000
    sink = MqttSink("stuck", port=broker.port, queue_size=capacity, ttl_s=60.0)
    sink.open(["a"], ["1"])
    try:
        assert wait_until(lambda: sink.connected, 5), sink.stats()
        sink.emit(np.zeros(1, np.float32), 0.0)  # row 0: the publisher takes it and gets stuck
        assert entered.wait(5), sink.stats()
        done = [0]

        def emitter():
            v = np.zeros(1, np.float32)
            for k in range(n_emits):
                v[0] = k
                sink.emit(v, 0.0)
                done[0] += 1

        th = threading.Thread(target=emitter, daemon=True)
        th.start()
        th.join(10.0)  # hang guard only: a blocking emit would never finish while publish is stuck
        assert not th.is_alive() and done[0] == n_emits, f"{done[0]} of {n_emits} emits returned"
        s = sink.stats()
        assert not released.is_set() and s["published"] == 0  # the publisher was stuck throughout
        assert s["produced"] == n_emits + 1
        assert s["queued"] == capacity
        assert s["dropped_overflow"] == n_emits - capacity  # row 0 is inside the stuck publish
    finally:
        sink.close(timeout_s=0.5)  # cancels the stuck loop after the timeout
    assert not released.is_set()


@pytest.mark.needs_mosquitto
def test_credentials_from_env_used_and_never_leaked(tmp_path, monkeypatch, caplog, broker_factory):
    user, pw = "rtsnn-user-Zq81", "s3cret-PW-x7Kp!"
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), user, pw], check=True, capture_output=True)
    b = broker_factory(password_file=str(pwfile))
    caplog.set_level(logging.DEBUG)
    try:
        monkeypatch.setenv("MY_MQTT_USER", user)
        monkeypatch.setenv("MY_MQTT_PW", pw)
        ok = MqttSink("auth", port=b.port, username_env="MY_MQTT_USER", password_env="MY_MQTT_PW")
        ok.open(["a"], ["1"])
        assert wait_until(lambda: ok.connected, 5), ok.stats()  # the broker accepted the env credentials
        texts = [repr(ok), json.dumps(ok.stats()), repr(ok.broker), str(vars(ok))]
        ok.close()
        monkeypatch.setenv("MY_MQTT_PW", pw + "-wrong")
        bad = MqttSink("auth2", port=b.port, username_env="MY_MQTT_USER", password_env="MY_MQTT_PW",
                       backoff_initial_s=0.05, backoff_max_s=0.05)
        bad.open(["a"], ["1"])
        assert wait_until(lambda: bad.stats()["last_error"] is not None, 5)
        assert not bad.connected
        # a refused login is final: the sink says so (a session ends non-zero on it) and stops
        # retrying, unless it was marked optional
        assert wait_until(lambda: bad.failure() is not None, 5), bad.stats()
        assert "refused the login" in bad.failure() and "MY_MQTT_USER" in bad.failure()
        assert bad.stats()["connects"] == 0
        texts += [repr(bad), json.dumps(bad.stats()), str(vars(bad))]
        bad.close()
    finally:
        b.stop()
    texts.append(caplog.text)
    for t in texts:
        assert pw not in t and user not in t
    assert "username_set" in texts[1]


def test_tls_connection(tmp_path, broker_factory):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {r.stderr.decode()[:200]}")
    b = broker_factory(tls_cert=str(crt), tls_key=str(key))
    try:
        plain = MqttSink("tls0", port=b.port, backoff_initial_s=0.05, backoff_max_s=0.05, connect_timeout_s=0.3)
        plain.open(["a"], ["1"])
        time.sleep(0.5)
        assert not plain.connected  # a TLS listener refuses a plain client
        plain.close()
        sink = MqttSink("tls1", port=b.port, tls=True, tls_ca_file=str(crt))
        sink.open(["a"], ["1"])
        assert wait_until(lambda: sink.connected, 5), sink.stats()
        sink.close()
    finally:
        b.stop()


def _session_through_a_broker_outage(broker, spike_recording, tmp_path) -> dict:
    """A whole session (a recording paced in real time -> SNN -> MQTT sink, 5 s): the broker
    is stopped once more than 200 commands have arrived, started again once the sink has
    dropped more than 200 while it was gone; returns the session's summary."""
    from rtsnn.config import parse_config
    from rtsnn.runtime.session import Session

    path, _ = spike_recording(8000, 4)
    session = Session(parse_config({
        "session": {"name": "mq", "duration_s": 5.0, "out_dir": str(tmp_path / "s"), "warmup_ticks": 50,
                    "monitor": False},
        "source": {"kind": "xdf_file", "options": {"path": str(path), "n_channels": 4,
                                                   "pace": "realtime", "stamp": "local"}},
        "encoder": {"kind": "passthrough", "options": {"n_channels": 4}},
        "model": {"random": {"n_rec": 16, "n_out": 2}},
        "sinks": [{"kind": "mqtt", "options": {"port": broker.port, "session": "mq", "queue_size": 64,
                                               "ttl_s": 0.05, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}}],
    }))
    sink = session.sinks[0]
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(summary=session.run()))
    lis = Listener(broker.port, "rtsnn/mq/command")
    runner.start()
    try:
        assert wait_until(lambda: len(lis.msgs) > 200, 10)
        lis.stop()
        broker.stop()
        assert wait_until(lambda: sink.stats()["dropped_overflow"] + sink.stats()["dropped_expired"] > 200, 10)
        broker.start()
        lis2 = Listener(broker.port, "rtsnn/mq/command")
        assert wait_until(lambda: len(lis2.msgs) > 200, 10)
        lis2.stop()
    finally:
        runner.join(30)
    return out["summary"]


def test_live_session_with_an_mqtt_sink_survives_the_broker_leaving(broker, spike_recording, tmp_path):
    """The session ticks on while the broker is gone (emit never waits for it), commands
    meanwhile are dropped and counted, and publishing resumes when it returns."""
    summary = _session_through_a_broker_outage(broker, spike_recording, tmp_path)
    s = summary["sinks"][0]
    assert summary["ticks"] == 5000
    assert s["disconnects"] == 1 and s["connects"] == 2, s
    assert s["dropped_overflow"] + s["dropped_expired"] > 200  # the commands sent into the outage
    assert s["produced"] == (s["published"] + s["dropped_overflow"] + s["dropped_expired"]
                             + s["publish_errors"] + s["queued"])


@pytest.mark.slow
def test_emit_stage_stays_short_through_a_broker_outage(broker, spike_recording, tmp_path):
    """Timing (make test-timing): the session's emit stage p99 stays under 1 ms although the
    broker leaves mid-session (emit is an enqueue, never a network call)."""
    summary = _session_through_a_broker_outage(broker, spike_recording, tmp_path)
    assert summary["stage_latency_us"]["emit"]["p99"] < 1000, summary["stage_latency_us"]["emit"]


@pytest.mark.needs_mosquitto
def test_an_optional_sink_with_a_refused_login_does_not_fail_the_session(tmp_path, monkeypatch, broker_factory):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "u", "right"], check=True, capture_output=True)
    b = broker_factory(password_file=str(pwfile))
    monkeypatch.setenv("RTSNN_MQTT_USERNAME", "u")
    monkeypatch.setenv("RTSNN_MQTT_PASSWORD", "wrong")
    sink = MqttSink("opt", port=b.port, optional=True, backoff_initial_s=0.05, backoff_max_s=0.05)
    sink.open(["a"], ["1"])
    try:
        assert wait_until(lambda: sink.stats()["failed"] is not None, 5), sink.stats()
        assert sink.failure() is None
    finally:
        sink.close()
