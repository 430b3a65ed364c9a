"""Tasks every app has so canvas primitives can run on any worker.

``tq.map`` and ``tq.starmap`` run a task's function over a list in one message (for
``task.map``, ``task.starmap`` and ``task.chunks``); ``tq.accumulate`` returns the list
it is given, which turns a group into a single value where a workflow needs one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tq.canvas.signature import Signature

if TYPE_CHECKING:
    from tq.app import App


def register_builtin_tasks(app: App) -> None:
    """Register ``tq.map``, ``tq.starmap`` and ``tq.accumulate`` on ``app``."""

    def map_task(task: dict[str, Any], it: list[Any]) -> list[Any]:
        function = Signature.from_dict(task, app).type
        return [function(item) for item in it]

    def starmap_task(task: dict[str, Any], it: list[Any]) -> list[Any]:
        function = Signature.from_dict(task, app).type
        return [function(*item) for item in it]

    def accumulate(*args: Any) -> Any:
        return args[0] if len(args) == 1 else list(args)

    app.task(name="tq.map", typing=False)(map_task)
    app.task(name="tq.starmap", typing=False)(starmap_task)
    app.task(name="tq.accumulate", typing=False)(accumulate)
