"""The live-update sender: one event loop per process for every push, events in the order
they were sent, and a push that fails never breaks the write that caused it."""

import threading

from asgiref.sync import async_to_sync
from channels.layers import channel_layers

from alpha_platform.common import realtime


def _receive_all(layer, channel, n):
    async def go():
        return [await layer.receive(channel) for _ in range(n)]
    return async_to_sync(go)()


def test_pushes_share_one_sender_loop_and_keep_their_order():
    # Receive on a layer instance of our own (same Redis): the process-wide one keeps receive
    # state bound to the event loop that last received, which other tests' loops then inherit.
    layer = channel_layers.make_backend("default")
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("user.4242", channel)
    for i in range(30):
        realtime._send(["user.4242"], {"type": "order", "n": i})
    senders = [t for t in threading.enumerate() if t.name == "realtime-sender"]
    assert len(senders) == 1  # not a loop (and a thread, and a Redis connection) per push
    messages = _receive_all(layer, channel, 30)
    assert [m["event"]["n"] for m in messages] == list(range(30))
    assert messages[0]["type"] == "platform.event"


def test_a_failing_layer_is_logged_not_raised(monkeypatch, caplog):
    class Broken:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(realtime, "get_channel_layer", lambda: Broken())
    realtime._send(["user.1", "staff"], {"type": "order"})  # must not raise
    assert "realtime push to user.1 failed: ConnectionError" in caplog.text
    assert "realtime push to staff failed" in caplog.text
