"""``app.control`` on the memory broker: requests in pidbox format, replies by ticket."""

from __future__ import annotations

import json
import uuid

from tq import App
from tq.control import reply_queue
from tq.message import Message


def test_broadcast_sends_a_pidbox_request_and_collects_replies_for_its_ticket() -> None:
    app = App(broker=f"memory://{uuid.uuid4().hex}")
    subscription = app.transport.subscribe("tq.pidbox")
    # Answer as a worker would, before the client starts collecting: replies wait in
    # the client's reply queue.
    app.control.broadcast("ping", destination=["w@h"])
    [request] = subscription.get(timeout=1)
    body = json.loads(request.body)
    assert (body["method"], body["destination"]) == ("ping", ["w@h"])
    assert {"clock", "expires"} <= set(request.headers)
    queue = reply_queue({"exchange": "reply.tq.pidbox", "routing_key": app.control.oid})
    assert queue.name == f"{app.control.oid}.reply.tq.pidbox"


def test_celery_compat_uses_celerys_exchanges() -> None:
    app = App(broker=f"memory://{uuid.uuid4().hex}", celery_compat=True)
    assert app.control.exchange == "celery.pidbox"
    assert app.events.receiver().exchange == "celeryev"


def test_replies_for_other_tickets_are_ignored() -> None:
    app = App(broker=f"memory://{uuid.uuid4().hex}")
    queue = reply_queue({"exchange": "reply.tq.pidbox", "routing_key": app.control.oid})
    stray = Message(b'{"w@h": "stale"}', "application/json", "utf-8", {"ticket": "old"})
    app.transport.publish(stray, queue)
    assert app.control.ping(timeout=0.2) == []
