"""Chord counting: each finished header task records its part; the last one sends the body.

The algorithm (also described in ``docs/canvas.md``), run by every header task as it
finishes, in the worker that ran it:

1. Record the task's outcome as part ``group_index`` of the chord
   (:meth:`~tq.backend.ResultBackend.chord_part`). A part recorded twice, by a header
   task redelivered after a worker died, replaces itself and is not counted twice by
   backends that count natively; the generic fallback may count it twice, never less.
2. A failed part fails the chord at once: the body's result becomes a
   :class:`~tq.errors.ChordError` naming the task, and the body's error callbacks run.
3. When the count reaches the chord's size, read every part
   (:meth:`~tq.backend.ResultBackend.chord_parts`). If one is still missing (the count
   was inflated by a redelivery), another header task has yet to finish and will fire.
4. Claim the chord with an atomic ``incr`` of ``{key}.fired``: only the claim that
   returns 1 sends the body, with every part's value in header order. So the body is
   sent once, however many header tasks see the chord complete at the same time.

Keys live ``result_expires`` seconds, like results. A worker killed between the claim
and the body's publish (microseconds) would lose the body: the one window left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tq import states
from tq.canvas.primitives import chain, chord
from tq.canvas.signature import Signature
from tq.errors import ChordError
from tq.resultstore import exception_from_meta

if TYPE_CHECKING:
    from tq.app import App
    from tq.request import Request

logger = logging.getLogger("tq.chords")

ChordTarget = tuple[dict[str, Any], str, int]


def target_of(request: Request, failed: bool) -> ChordTarget | None:
    """The chord a finishing task reports into, if any.

    A task reports when it carries ``chord`` and is the end of its chain. A task that
    fails in the middle of a chain reports for the chain's last step, which will never
    run, so the chord fails instead of waiting forever.
    """
    if request.chain:
        if not failed:
            return None
        last = request.chain[0].get("options") or {}
        chord_body, group_id, index = (
            last.get("chord"),
            last.get("group_id"),
            last.get("group_index"),
        )
    else:
        chord_body, group_id, index = request.chord, request.group, request.group_index
    if isinstance(chord_body, Mapping) and group_id is not None and index is not None:
        return dict(chord_body), str(group_id), int(index)
    return None


def record(app: App, target: ChordTarget, task_id: str, state: str, value: Any) -> None:
    """Record one header task's outcome and send or fail the chord when it is complete."""
    body, group_id, index = target
    results = app.results
    backend = results.backend
    if backend is None:
        logger.error("Chord %s: no result backend to count its parts in", group_id)
        return
    key = results.chord_key(group_id)
    part = results.encode(results.build_meta(task_id, state, value, None, None))
    count = backend.chord_part(key, index, part, results.expires)
    if state == states.FAILURE:
        if _claim(app, key):
            fail(app, body, ChordError(f"Dependency {task_id} raised {_describe(value)}"))
        return
    size = int(body.get("chord_size") or 0)
    if count < size:
        return
    raws = backend.chord_parts(key, size)
    if any(raw is None for raw in raws):
        return  # counted a redelivery twice; the missing part's task will finish it
    parts = [results.decode(raw) for raw in raws if raw is not None]
    failure = next((p for p in parts if p.get("status") == states.FAILURE), None)
    if not _claim(app, key):
        return
    if failure is not None:
        error = exception_from_meta(failure.get("result"))
        fail(app, body, ChordError(f"Dependency {failure.get('task_id')} raised {error!r}"))
        return
    callback = Signature.from_dict(body, app)
    callback.apply_async(([p.get("result") for p in parts],))


def _claim(app: App, key: str) -> bool:
    backend = app.results.backend
    assert backend is not None
    return backend.incr(f"{key}.fired", 1, app.results.expires) == 1


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, BaseException) else repr(exception_from_meta(value))


def final_step(signature: Signature) -> Signature:
    """The step whose result is ``signature``'s result: a chain's last, a chord's body's."""
    if isinstance(signature, chain) and signature.tasks:
        return final_step(signature.tasks[-1])
    if isinstance(signature, chord):
        return final_step(signature.body)
    return signature


def errbacks_of(signature: Signature) -> list[dict[str, Any]]:
    """The error callbacks of ``signature`` (a chain's are on every step: take the first's)."""
    first = signature.tasks[0] if isinstance(signature, chain) and signature.tasks else signature
    errbacks: list[dict[str, Any]] = first.to_dict()["options"].get("link_error") or []
    return errbacks


def fail(app: App, body: Mapping[str, Any], error: ChordError) -> None:
    """Fail a chord: store the error as the body's result and run its error callbacks.

    A chord whose body reports into an outer chord (a chord of chords) fails that one too.
    """
    from tq.execution import send_errbacks
    from tq.request import Request

    callback = Signature.from_dict(body, app)
    last = final_step(callback)
    task_id = last.id or ""
    app.results.store(task_id, states.FAILURE, error, f"{type(error).__name__}: {error}\n")
    request = Request(id=task_id, task=last.task, called_directly=False)
    send_errbacks(app, errbacks_of(callback), request, error, f"{type(error).__name__}: {error}\n")
    options = last.to_dict()["options"]
    outer = options.get("chord"), options.get("group_id"), options.get("group_index")
    if isinstance(outer[0], Mapping) and outer[1] is not None and outer[2] is not None:
        record(app, (dict(outer[0]), str(outer[1]), int(outer[2])), task_id, states.FAILURE, error)
