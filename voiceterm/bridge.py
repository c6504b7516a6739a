"""Bridges connect a node to the bus through routes.

A route is a small chain built fluently::

    (bridge.on(UserStoppedSpeaking)
        .interrupt_on(UserStartedSpeaking, handler=node.on_interrupt_generate)
        .stream(node.generate)
        .broadcast())

Semantics, in short:

* Every step function receives a :class:`~voiceterm.bus.Message`; values made by
  ``map`` or yielded by ``stream`` are wrapped in a ``Message`` from this bridge's
  node before the next step sees them. ``None`` ends the chain for that value.
* Each route owns a bounded queue and one worker task, so triggers of one route
  run one after another, in order, and chunks of one run reach subscribers in the
  order they were yielded. A slow route only holds up its own queue.
* A route with ``interrupt_on`` or ``exclusive`` runs each trigger in a task of its
  own, so that it can be cancelled between chunks: the generator sees
  ``CancelledError`` and its ``finally`` runs, nothing more from that run is
  broadcast, triggers queued before the interrupt are dropped, and the next run
  starts only when the cancelled one has finished.
* A route ignores messages its own bridge sent (no accidental self-loops) unless
  its ``source=`` names this bridge's node explicitly.
* An exception in a step is logged and published as ``AgentError``; the route
  keeps serving later triggers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

from voiceterm.bus import Message
from voiceterm.events import AgentError, ControlEvent

if TYPE_CHECKING:
    from voiceterm.bus import Bus

logger = logging.getLogger(__name__)

OverflowPolicy = Literal["block", "drop_oldest"]
Trigger = type[Any] | Literal["*"]

_MAP, _FILTER, _STREAM, _BROADCAST = range(4)

# How long stop() waits for a cancelled task: libraries may swallow CancelledError.
_CANCEL_TIMEOUT_S = 2.0


def node_id_of(node: Any) -> str:
    """``node.id`` if it has one, the string itself, else the class name."""
    if isinstance(node, str):
        return node
    node_id = getattr(node, "id", None)
    return node_id if isinstance(node_id, str) and node_id else type(node).__name__


class _Run:
    """One execution of a route for one trigger."""

    __slots__ = ("interrupted", "task")

    def __init__(self) -> None:
        self.interrupted = False
        self.task: asyncio.Task[None] | None = None


async def _close_generator(agen: Any, error: BaseException) -> None:
    """Finish an abandoned generator so its ``finally`` runs.

    A cancelled run throws ``CancelledError`` into the generator (that is what the
    seed's interruption-aware nodes expect); anything else closes it.
    """
    try:
        if isinstance(error, asyncio.CancelledError) and hasattr(agen, "athrow"):
            try:
                await agen.athrow(asyncio.CancelledError())
            except (asyncio.CancelledError, StopAsyncIteration):
                return
            # The generator swallowed the cancellation and yielded again.
            await agen.aclose()
        elif hasattr(agen, "aclose"):
            await agen.aclose()
    except RuntimeError as exc:  # "athrow(): asynchronous generator is already running"
        logger.debug("could not close generator: %s", exc)
    except Exception:
        logger.exception("generator failed while closing")


class Route:
    """A chain of steps run for every message that matches its trigger.

    Built by :meth:`Bridge.on`; every builder method returns the route itself.
    """

    def __init__(
        self,
        bridge: Bridge,
        trigger: Trigger,
        *,
        source: str | None,
        filter_fn: Callable[[Message], bool] | None,
        property_filters: dict[str, Any],
    ) -> None:
        self._bridge = bridge
        self.trigger = trigger
        self._source = source
        self._filter_fn = filter_fn
        self._property_filters = tuple(property_filters.items())
        self._steps: list[tuple[int, Any]] = []
        self._interrupt_types: tuple[type[Any], ...] = ()
        self._interrupt_handler: Callable[[Message], Any] | None = None
        self._suspend_types: tuple[type[Any], ...] = ()
        self._resume_types: tuple[type[Any], ...] = ()
        self._exclusive = False
        self.suspended = False
        self.name = f"{bridge.node_id}:{getattr(trigger, '__name__', trigger)}"
        # Two queues so that control events never wait behind data.
        self._control: deque[Message] = deque()
        self._data: deque[Message] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._space_waiters: list[asyncio.Future[None]] = []
        self._worker: asyncio.Task[None] | None = None
        self._run: _Run | None = None
        self.dropped = 0
        self.errors = 0

    # --- builder -----------------------------------------------------------

    def map(self, fn: Callable[[Message], Any]) -> Route:
        """Call ``fn(message)`` (sync or async); its return value flows on."""
        self._steps.append((_MAP, fn))
        return self

    def filter(self, fn: Callable[[Message], Any]) -> Route:
        """Continue only when ``fn(message)`` is true."""
        self._steps.append((_FILTER, fn))
        return self

    def stream(self, fn: Callable[[Message], Any]) -> Route:
        """Flat-map: every value ``fn(message)`` yields flows on, as it is produced.

        ``fn`` may be an async generator function, return an async iterable, a
        coroutine that gives an iterable, or a plain iterable.
        """
        self._steps.append((_STREAM, fn))
        return self

    def broadcast(self, event_cls: type[Any] | None = None) -> Route:
        """Publish every value that reaches this step on the bus, at once.

        With ``event_cls``, a value that is not already an instance is wrapped as
        ``event_cls(value)`` (or ``event_cls()`` for ``None``).
        """
        self._steps.append((_BROADCAST, event_cls))
        return self

    def interrupt_on(
        self, *event_types: type[Any], handler: Callable[[Message], Any] | None = None
    ) -> Route:
        """Cancel the running run when one of ``event_types`` arrives.

        ``handler(message)`` is called once per interrupt that found work to cancel.
        """
        self._interrupt_types += event_types
        if handler is not None:
            self._interrupt_handler = handler
        self._bridge._invalidate()
        return self

    def suspend_on(self, *event_types: type[Any]) -> Route:
        """Ignore triggers after one of ``event_types`` until ``resume_on`` fires."""
        self._suspend_types += event_types
        self._bridge._invalidate()
        return self

    def resume_on(self, *event_types: type[Any]) -> Route:
        """Accept triggers again after one of ``event_types``."""
        self._resume_types += event_types
        self._bridge._invalidate()
        return self

    def exclusive(self) -> Route:
        """One run at a time: a new trigger cancels the running one and replaces
        anything still queued (a voice turn must never run two generations)."""
        self._exclusive = True
        return self

    def named(self, name: str) -> Route:
        """Name the route (used in task names, logs and ``AgentError.source``)."""
        self.name = name
        return self

    # --- matching and delivery (called by the bridge, synchronously) ----------

    def _isolated(self) -> bool:
        return self._exclusive or bool(self._interrupt_types)

    def accepts(self, message: Message) -> bool:
        if self.suspended:
            return False
        if self._source is not None:
            if message.source != self._source:
                return False
        elif message.source == self._bridge.node_id:
            return False
        event = message.event
        for key, expected in self._property_filters:
            if getattr(event, key, _MISSING) != expected:
                return False
        return self._filter_fn is None or bool(self._filter_fn(message))

    def full(self) -> bool:
        return len(self._data) >= self._bridge.queue_size

    def push(self, message: Message) -> None:
        if isinstance(message.event, ControlEvent):
            self._control.append(message)
        else:
            if self._exclusive:
                self._data.clear()
                self._cancel_run(self._run)
            elif len(self._data) >= self._bridge.queue_size:
                self._data.popleft()  # only reached with when_full="drop_oldest"
                self.dropped += 1
            self._data.append(message)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def space(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self._space_waiters.append(future)
        return future

    def control(self, message: Message) -> None:
        """Interrupt, suspend or resume, depending on what ``message`` carries."""
        event = message.event
        if self._suspend_types and isinstance(event, self._suspend_types):
            self.suspended = True
        if self._resume_types and isinstance(event, self._resume_types):
            self.suspended = False
        if self._interrupt_types and isinstance(event, self._interrupt_types):
            self.interrupt(message)

    def interrupt(self, message: Message | None = None) -> bool:
        """Cancel the running run and drop queued triggers; ``True`` if any."""
        run = self._run
        running = run is not None and not run.interrupted and not (run.task and run.task.done())
        had_work = running or bool(self._data)
        if not had_work:
            return False
        self._data.clear()
        self._wake_space_waiters()
        self._cancel_run(run)
        handler = self._interrupt_handler
        if handler is not None and message is not None:
            self._bridge._call_handler(handler, message, self.name)
        return True

    @staticmethod
    def _cancel_run(run: _Run | None) -> None:
        if run is None or run.interrupted:
            return
        run.interrupted = True
        if run.task is not None:
            run.task.cancel()

    def _wake_space_waiters(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # --- execution ---------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"route {self.name}"
            )

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.cancel()
        done, _ = await asyncio.wait({worker}, timeout=_CANCEL_TIMEOUT_S)
        if not done:
            logger.warning("route %s did not stop within %.1f s", self.name, _CANCEL_TIMEOUT_S)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        control, data = self._control, self._data
        try:
            while True:
                if not control and not data:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                message = control.popleft() if control else data.popleft()
                if self._space_waiters:
                    self._wake_space_waiters()
                if self._isolated():
                    run = _Run()
                    run.task = loop.create_task(
                        self._execute(message, run), name=f"run {self.name}"
                    )
                    self._run = run
                    # asyncio.wait, not await: a cancelled run must not cancel the worker.
                    await asyncio.wait({run.task})
                    self._run = None
                else:
                    await self._execute(message, None)
        finally:
            current = self._run
            if current is not None and current.task is not None and not current.task.done():
                self._cancel_run(current)
                await asyncio.wait({current.task}, timeout=_CANCEL_TIMEOUT_S)
            self._run = None

    async def _execute(self, message: Message, run: _Run | None) -> None:
        try:
            await self._run_steps(message, 0, run)
        except asyncio.CancelledError:
            if run is None or not run.interrupted:
                raise
        except Exception as exc:
            self.errors += 1
            logger.exception("route %s failed", self.name)
            await self._bridge.publish(
                AgentError(error=f"{type(exc).__name__}: {exc}", source=self.name)
            )

    async def _run_steps(self, value: Any, start: int, run: _Run | None) -> None:
        steps = self._steps
        for index in range(start, len(steps)):
            kind, fn = steps[index]
            if kind == _MAP:
                value = fn(self._as_message(value))
                if inspect.isawaitable(value):
                    value = await value
                if value is None:
                    return
            elif kind == _FILTER:
                if not fn(self._as_message(value)):
                    return
            elif kind == _STREAM:
                produced = fn(self._as_message(value))
                await self._stream(produced, index + 1, run)
                return
            else:
                await self._broadcast(value, fn, run)

    async def _stream(self, produced: Any, next_index: int, run: _Run | None) -> None:
        if inspect.isawaitable(produced) and not hasattr(produced, "__aiter__"):
            produced = await produced
        if produced is None:
            return
        if hasattr(produced, "__aiter__"):
            iterator: AsyncIterator[Any] = produced.__aiter__()
            try:
                async for chunk in iterator:
                    await self._run_steps(chunk, next_index, run)
            except BaseException as exc:
                await _close_generator(iterator, exc)
                raise
            return
        for chunk in produced:
            await self._run_steps(chunk, next_index, run)

    async def _broadcast(self, value: Any, event_cls: type[Any] | None, run: _Run | None) -> None:
        event = value.event if type(value) is Message else value
        if event_cls is not None and not isinstance(event, event_cls):
            event = event_cls() if event is None else event_cls(event)
        if event is None:
            return
        if run is not None and run.interrupted:
            raise asyncio.CancelledError
        bus = self._bridge.bus
        if bus is None or not bus.running:
            return
        message = Message(self._bridge.node_id, event)
        stuck = bus.deliver_now(message)
        if stuck >= 0:
            await bus.finish_delivery(message, stuck)

    def _as_message(self, value: Any) -> Message:
        return value if type(value) is Message else Message(self._bridge.node_id, value)


_MISSING = object()


class Bridge:
    """Connects one node to the bus; ``on(...)`` starts a route.

    Args:
        node: the node (its id is ``node.id``, the string itself, or the class name).
        queue_size: how many messages each route of this bridge may hold.
        when_full: ``"block"`` makes a publisher wait for room (nothing is lost);
            ``"drop_oldest"`` drops the oldest queued data message and counts it in
            ``Route.dropped`` (for meters and UIs that only want the latest).
    """

    def __init__(
        self, node: Any, *, queue_size: int = 1024, when_full: OverflowPolicy = "block"
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.node = node
        self.node_id = node_id_of(node)
        self.queue_size = queue_size
        self.when_full: OverflowPolicy = when_full
        self.bus: Bus | None = None
        self._routes: list[Route] = []
        self._routes_for: dict[type[Any], tuple[Route, ...]] = {}
        self._controls_for: dict[type[Any], tuple[Route, ...]] = {}
        self._handler_tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def on(
        self,
        event: Trigger,
        *,
        source: str | None = None,
        filter_fn: Callable[[Message], bool] | None = None,
        **property_filters: Any,
    ) -> Route:
        """Start a route for ``event`` (a class, matching subclasses too, or ``"*"``).

        Args:
            source: only messages from this node id.
            filter_fn: only messages for which ``filter_fn(message)`` is true.
            property_filters: only events whose attributes equal these values.
        """
        route = Route(
            self, event, source=source, filter_fn=filter_fn, property_filters=property_filters
        )
        self._routes.append(route)
        self._invalidate()
        if self._started:
            route.start()
        return route

    def attach(self, bus: Bus) -> None:
        self.bus = bus

    def start(self) -> None:
        self._started = True
        for route in self._routes:
            route.start()

    async def stop(self) -> None:
        self._started = False
        for task in self._handler_tasks:
            task.cancel()
        await asyncio.gather(*(route.stop() for route in self._routes))
        if self._handler_tasks:
            await asyncio.wait(self._handler_tasks, timeout=_CANCEL_TIMEOUT_S)

    async def publish(self, event: Any) -> None:
        """Broadcast ``event`` from this bridge's node (for nodes that push)."""
        if self.bus is not None:
            await self.bus.broadcast(Message(self.node_id, event))

    # --- called by the bus ----------------------------------------------------------

    def interrupt(self, message: Message) -> None:
        event_type = type(message.event)
        routes = self._controls_for.get(event_type)
        if routes is None:
            routes = self._controls_for[event_type] = tuple(
                r
                for r in self._routes
                if issubclass(event_type, r._interrupt_types + r._suspend_types + r._resume_types)
            )
        for route in routes:
            route.control(message)

    def deliver(self, message: Message) -> bool:
        """Queue ``message`` on every matching route; ``False`` if a blocking one is full.

        All-or-nothing: either every matching route gets it or none does, so a retry
        never queues it twice.
        """
        event_type = type(message.event)
        routes = self._routes_for.get(event_type)
        if routes is None:
            routes = self._routes_for[event_type] = tuple(
                r for r in self._routes if r.trigger == "*" or issubclass(event_type, r.trigger)
            )
        if not routes:
            return True
        matching = [r for r in routes if r.accepts(message)]
        if self.when_full == "block" and not isinstance(message.event, ControlEvent):
            for route in matching:
                if route.full() and not route._exclusive:
                    return False
        for route in matching:
            route.push(message)
        return True

    async def wait_for_space(self, message: Message) -> None:
        full = [r for r in self._routes if r.full() and r.accepts(message)]
        if full:
            await full[0].space()

    # --- internals ----------------------------------------------------------------

    def _invalidate(self) -> None:
        self._routes_for.clear()
        self._controls_for.clear()

    def _call_handler(self, handler: Callable[[Message], Any], message: Message, name: str) -> None:
        try:
            result = handler(message)
        except Exception:
            logger.exception("interrupt handler of %s failed", name)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
