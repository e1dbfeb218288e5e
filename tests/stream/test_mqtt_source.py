"""MQTT teaching / reward / control source against a real mosquitto on a free loopback port."""

from __future__ import annotations

import json
import math
import time

import msgpack
import numpy as np
import pylsl
import pytest

from conftest import import_or_skip

from rtsnn.stream.mqtt_common import decode_payload, PayloadError
from rtsnn.stream.mqtt_sink import wait_until
from rtsnn.control_messages import ControlMessage, apply_control, parse_control
from rtsnn.stream.mqtt_source import MqttRewardSource, MqttSource

mqtt = import_or_skip("paho.mqtt.client")


@pytest.fixture
def pub(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    yield c
    c.disconnect()
    c.loop_stop()


def _send(c, topic, payload):
    c.publish(topic, payload, qos=1).wait_for_publish(3)


# ---------------------------------------------------------------- pure parts
def test_decode_payload_formats_and_errors():
    assert decode_payload(b'{"a": 1}', "json") == {"a": 1}
    assert decode_payload(msgpack.packb({"a": 1}), "msgpack") == {"a": 1}
    assert decode_payload(msgpack.packb([1.5, 2]), "auto") == [1.5, 2]
    assert decode_payload(b"0.25", "auto") == 0.25
    with pytest.raises(PayloadError, match="not valid json"):
        decode_payload(b"{broken", "json")
    with pytest.raises(PayloadError, match="empty"):
        decode_payload(b"", "auto")


def test_parse_control_validates():
    assert parse_control({"cmd": "pause_learning"}) == ("pause_learning", None)
    assert parse_control("resume_learning") == ("resume_learning", None)
    assert parse_control({"cmd": "set_learning_rate", "value": 1e-3}) == ("set_learning_rate", 1e-3)
    for bad, msg in [({"cmd": "explode"}, "must be one of"), ([1], "must be an object"),
                     ({"cmd": "set_learning_rate"}, "finite number value > 0"),
                     ({"cmd": "set_learning_rate", "value": -1}, "> 0"),
                     ({"cmd": "set_learning_rate", "value": float("nan")}, "finite"),
                     ({"cmd": "set_learning_rate", "value": True}, "finite number")]:
        with pytest.raises(ValueError, match=msg):
            parse_control(bad)


def test_apply_control_calls_the_learner():
    class L:
        def __init__(self):
            self.calls = []

        def pause_learning(self):
            self.calls.append("pause")

        def set_learning_rate(self, lr):
            self.calls.append(("lr", lr))

    lrn = L()
    assert apply_control(ControlMessage("pause_learning", None, 0.0), lrn)
    assert apply_control(ControlMessage("set_learning_rate", 0.01, 0.0), lrn)
    assert not apply_control(ControlMessage("resume_learning", None, 0.0), lrn)  # no such method
    assert lrn.calls == ["pause", ("lr", 0.01)]


def test_bad_options():
    with pytest.raises(ValueError, match="n_channels"):
        MqttSource("s", n_channels=0)
    with pytest.raises(ValueError, match="timestamps"):
        MqttSource("s", 2, timestamps="wall")
    with pytest.raises(ValueError, match="must not contain"):
        MqttSource("s/+", 2)
    with pytest.raises(ValueError, match="at least one"):
        MqttSource("s", 1, teaching=False, reward=False, control=False)
    with pytest.raises(ValueError, match="fixed"):
        MqttRewardSource("s", n_channels=3)


# ---------------------------------------------------------------- with a broker
def test_teaching_round_trip_and_bad_messages(broker, pub):
    src = MqttSource("ts", n_channels=2, port=broker.port)
    src.open()
    try:
        assert src.wait_subscribed(5), src.stats()
        t = "rtsnn/ts/teaching"
        t_before = pylsl.local_clock()
        _send(pub, t, json.dumps([1.0, 2.0]))
        _send(pub, t, msgpack.packb({"values": [3.0, 4.0], "t": 5.0}))
        _send(pub, t, b"{not json")              # bad_payload
        _send(pub, t, json.dumps([1.0, 2.0, 3.0]))  # bad_shape
        _send(pub, t, b"[1.0, NaN]")               # nonfinite
        _send(pub, t, json.dumps(["a", "b"]))      # bad_shape (not numbers)
        assert wait_until(lambda: src.stats()["messages"] == 6, 3), src.stats()
        buf, ts = np.zeros((8, 2), np.float32), np.zeros(8)
        n = src.pull(buf, ts)
        assert n == 2
        assert buf[:2].tolist() == [[1.0, 2.0], [3.0, 4.0]]
        assert t_before <= ts[0] <= ts[1] <= pylsl.local_clock()  # receipt stamps on the LSL clock
        assert src.pull(buf, ts) == 0
        s = src.stats()
        assert (s["teaching"], s["delivered"], s["bad_payload"], s["bad_shape"], s["nonfinite"]) == (2, 2, 1, 2, 1)
        assert "teaching" in s["last_bad"]
    finally:
        src.close()


def test_payload_timestamps_and_queue_drops_oldest(broker, pub):
    src = MqttSource("tq", n_channels=1, port=broker.port, timestamps="payload", queue_size=3, reward=False,
                     control=False)
    src.open()
    try:
        assert src.wait_subscribed(5)
        for k in range(5):
            _send(pub, "rtsnn/tq/teaching", json.dumps({"values": [k], "t": 100.0 + k}))
        _send(pub, "rtsnn/tq/teaching", b"7")  # bare number for one channel, no "t": receipt time
        assert wait_until(lambda: src.stats()["teaching"] == 6, 3)
        buf, ts = np.zeros((8, 1), np.float32), np.zeros(8)
        n = src.pull(buf, ts)
        assert n == 3 and buf[:3, 0].tolist() == [3.0, 4.0, 7.0]
        assert ts[:2].tolist() == [103.0, 104.0]
        assert abs(ts[2] - pylsl.local_clock()) < 5.0  # no "t" in the payload: stamped at receipt
        s = src.stats()
        assert s["dropped_teaching"] == 3 and s["no_payload_t"] == 1
    finally:
        src.close()


def test_reward_and_control(broker, pub):
    # an anonymous broker: control only with the explicit opt-in by topic name
    src = MqttSource("rc", n_channels=1, port=broker.port, anonymous_control_topic="rtsnn/rc/control")
    src.open()
    try:
        assert src.wait_subscribed(5)
        _send(pub, "rtsnn/rc/reward", b"0.5")
        _send(pub, "rtsnn/rc/reward", json.dumps({"reward": 1.25, "t": 3.0}))
        _send(pub, "rtsnn/rc/reward", b"NaN")            # non-finite: counted, ignored
        _send(pub, "rtsnn/rc/reward", b'"lots"')         # not a number
        _send(pub, "rtsnn/rc/control", b"pause_learning")  # bare text
        _send(pub, "rtsnn/rc/control", msgpack.packb({"cmd": "set_learning_rate", "value": 0.002}))
        _send(pub, "rtsnn/rc/control", json.dumps({"cmd": "resume_learning"}))
        _send(pub, "rtsnn/rc/control", json.dumps({"cmd": "set_learning_rate", "value": -3}))  # bad
        _send(pub, "rtsnn/rc/control", b"reboot")        # undecodable and not a command
        assert wait_until(lambda: src.stats()["messages"] == 9, 3), src.stats()
        r = src.poll_reward()
        assert r is not None and r[0] == pytest.approx(1.75) and math.isfinite(r[1])
        assert src.poll_reward() is None
        msgs = src.poll_control()
        assert [(m.command, m.value) for m in msgs] == [("pause_learning", None), ("set_learning_rate", 0.002),
                                                        ("resume_learning", None)]
        assert src.poll_control() == []
        s = src.stats()
        assert s["reward"]["bad"] == 1 and s["bad_payload"] == 2 and s["bad_control"] == 1 and s["control"] == 3
    finally:
        src.close()


def test_reward_source_protocol_and_reconnect(broker, pub):
    from rtsnn.protocols import RewardSource

    rs = MqttRewardSource("rw", port=broker.port, backoff_initial_s=0.05, backoff_max_s=0.2)
    assert isinstance(rs, RewardSource)
    rs.open()
    try:
        assert rs.wait_subscribed(5)
        _send(pub, "rtsnn/rw/reward", b"1")
        assert wait_until(lambda: rs.stats()["rewards"] == 1, 3)
        assert rs.poll()[0] == 1.0
        pub.loop_stop()
        broker.stop()
        assert wait_until(lambda: not rs.stats()["connected"], 3)
        assert rs.poll() is None  # no broker: nothing, no error, no wait
        broker.start()
        assert wait_until(lambda: rs.stats()["connects"] == 2, 5), rs.stats()
        assert rs.wait_subscribed(3)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        _send(c, "rtsnn/rw/reward", b"-2")
        assert wait_until(lambda: rs.stats()["rewards"] == 2, 3)
        assert rs.poll()[0] == -2.0
        c.loop_stop()
        c.disconnect()
    finally:
        rs.close()


def test_control_is_off_on_an_anonymous_broker_unless_opted_in_by_name(broker, pub, monkeypatch):
    monkeypatch.delenv("RTSNN_MQTT_USERNAME", raising=False)
    src = MqttSource("anon", n_channels=1, port=broker.port)
    assert not src.control_enabled and "not authenticated" in src.control_off_reason
    assert "anonymous_control_topic: rtsnn/anon/control" in src.control_off_reason
    src.open()
    try:
        assert src.wait_subscribed(5)
        _send(pub, "rtsnn/anon/control", json.dumps({"cmd": "set_learning_rate", "value": 1e300}))
        _send(pub, "rtsnn/anon/reward", b"1.0")
        assert wait_until(lambda: src.stats()["messages"] >= 1, 3), src.stats()
        time.sleep(0.2)
        assert src.poll_control() == [] and src.stats()["control"] == 0
        assert src.stats()["control_enabled"] is False
    finally:
        src.close()
    with pytest.raises(ValueError, match="is not this source's control topic 'rtsnn/anon/control'"):
        MqttSource("anon", n_channels=1, port=broker.port, anonymous_control_topic="rtsnn/other/control")
    with pytest.raises(ValueError, match="would subscribe to nothing: MQTT control is off"):
        MqttSource("anon", n_channels=1, port=broker.port, teaching=False, reward=False)


def test_control_is_on_over_an_authenticated_connection(broker_factory, tmp_path, monkeypatch):
    import subprocess

    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "steer", "s3cret"], check=True, capture_output=True)
    b = broker_factory(password_file=str(pw))
    monkeypatch.setenv("RTSNN_MQTT_USERNAME", "steer")
    monkeypatch.setenv("RTSNN_MQTT_PASSWORD", "s3cret")
    src = MqttSource("auth", n_channels=1, port=b.port)
    assert src.control_enabled and src.control_off_reason == ""
    src.open()
    try:
        assert src.wait_subscribed(5)
        import paho.mqtt.publish as publish

        publish.single("rtsnn/auth/control", json.dumps({"cmd": "pause_learning"}), hostname="127.0.0.1",
                       port=b.port, auth={"username": "steer", "password": "s3cret"}, qos=1)
        assert wait_until(lambda: src.stats()["control"] == 1, 5), src.stats()
        assert [m.command for m in src.poll_control()] == ["pause_learning"]
    finally:
        src.close()
