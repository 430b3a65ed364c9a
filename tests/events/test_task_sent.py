"""``task_send_sent_event``: clients announce each task they send, with Celery's fields."""

from __future__ import annotations

import uuid

from tq import App


def test_sending_a_task_emits_task_sent_when_enabled() -> None:
    url = f"memory://sent-{uuid.uuid4().hex}"
    app = App("sent", broker=url, backend=url, task_send_sent_event=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    receiver = app.events.receiver()
    receiver.open(wakeup=False)
    try:
        result = add.apply_async((2, 3), queue="maths", countdown=60)
        events = list(receiver.itercapture(limit=1, timeout=5, wakeup=False))
    finally:
        receiver.close()
        app.close()
    assert len(events) == 1
    sent = events[0]
    assert sent["type"] == "task-sent"
    assert sent["uuid"] == result.id
    assert sent["name"] == add.name
    assert sent["args"] == "(2, 3)"
    assert sent["queue"] == "maths" and sent["routing_key"] == "maths"
    assert sent["eta"] is not None and sent["retries"] == 0


def test_no_task_sent_event_by_default() -> None:
    url = f"memory://quiet-{uuid.uuid4().hex}"
    app = App("quiet", broker=url, backend=url)
    receiver = app.events.receiver()
    receiver.open(wakeup=False)
    try:
        app.send_task("anything.at.all")
        events = list(receiver.itercapture(limit=1, timeout=0.3, wakeup=False))
    finally:
        receiver.close()
        app.close()
    assert events == []
