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
  order they were yielded. A slow route only holds up its own queue (and, when
  that queue is full and blocks, the publishers that send to it).
* A route with ``interrupt_on`` or ``exclusive`` runs each trigger in a task of its
  own, so that it can be cancelled between chunks: the generator sees
  ``CancelledError`` and its ``finally`` runs, nothing more from that run is
  broadcast, triggers queued before the interrupt are dropped, and the next run
  starts only when the cancelled one has finished. An interrupt that finds
  nothing running and nothing queued does nothing (its handler is not called).
* A route ignores messages its own bridge sent (no accidental self-loops) unless
  its ``source=`` names this bridge's node explicitly.
* An exception in a step is logged and published as ``AgentError``; the route
  keeps serving later triggers.
* Fairness: a producer that never suspends (a generator that yields without
  awaiting) would keep the event loop to itself; every route therefore yields to
  the loop after a fixed number of chunks, which bounds how long an interrupt
  can wait to be seen.

Performance notes (why the code looks the way it does): a route's steps are
compiled once into a chain of plain functions that only create a coroutine when
something really has to be awaited (an async ``map``, a ``stream`` stage, a full
queue), because creating and awaiting a coroutine per step per chunk was most of
the cost of a chunk; the bus hands a message to each listening route with one
call (:meth:`Route.offer`); a plain route drains its queue without going back to
the event loop for every message. ``scripts/bench_bus.py`` measures the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from voiceterm.bus import Message
from voiceterm.events import AgentError, ControlEvent
from voiceterm.patterns.streams import close_async_iterator

if TYPE_CHECKING:
    from voiceterm.bus import Bus

logger = logging.getLogger(__name__)

OverflowPolicy = Literal["block", "drop_oldest"]
Trigger: TypeAlias = type[Any] | tuple[type[Any], ...] | Literal["*"]

_MAP, _FILTER, _STREAM, _BROADCAST = range(4)

# How long stop() waits for a cancelled task: libraries may swallow CancelledError.
_CANCEL_TIMEOUT_S = 2.0

# Chunks (or messages) a route handles before it lets the event loop run others.
# At a few microseconds a chunk this keeps the longest stretch well under 1 ms,
# while the cost of yielding (a loop iteration) stays small per chunk.
FAIRNESS_BUDGET = 64

_MISSING = object()


def node_id_of(node: Any) -> str:
    """``node.id`` if it has one, the string itself, else the class name."""
    if isinstance(node, str):
        return node
    node_id = getattr(node, "id", None)
    return node_id if isinstance(node_id, str) and node_id else type(node).__name__


def _trigger_name(trigger: Trigger) -> str:
    if isinstance(trigger, tuple):
        return "|".join(t.__name__ for t in trigger)
    if isinstance(trigger, str):
        return trigger
    return trigger.__name__


class _Run:
    """One execution of an isolated route for one trigger."""

    __slots__ = ("interrupted", "task")

    def __init__(self) -> None:
        self.interrupted = False
        self.task: asyncio.Task[None] | None = None


def _cancel_run(run: _Run | None) -> None:
    if run is None or run.interrupted:
        return
    run.interrupted = True
    if run.task is not None:
        run.task.cancel()


# One compiled step: does its work on a value; None when done, else what to await.
Sink = Callable[[Any, _Run | None], Awaitable[None] | None]


class _Fairness:
    """The chunks a route may still handle before it lets the event loop run others.

    Shared by the worker (messages) and the stream stages (chunks) of one route.
    """

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = FAIRNESS_BUDGET

    async def pause(self) -> None:
        self.left = FAIRNESS_BUDGET
        await asyncio.sleep(0)


class _Inbox:
    """A route's queues, the worker's wake-up and the publishers waiting for room.

    Two queues so that control events never wait behind data. The route fills them
    (it owns the size and the overflow policy); the worker empties them.
    """

    __slots__ = ("control", "data", "space_waiters", "wakeup")

    def __init__(self) -> None:
        self.control: deque[Message] = deque()
        self.data: deque[Message] = deque()
        self.wakeup: asyncio.Future[None] | None = None
        self.space_waiters: list[asyncio.Future[None]] = []

    def wake_worker(self) -> None:
        wakeup = self.wakeup
        if wakeup is not None:
            self.wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    def space(self, size: int, *, stopped: bool) -> asyncio.Future[None]:
        """A future that is done when the data queue may have room again."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if stopped or len(self.data) < size:
            future.set_result(None)
        else:
            self.space_waiters.append(future)
        return future

    def wake_space_waiters(self) -> None:
        waiters, self.space_waiters = self.space_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def clear(self) -> None:
        """Drop everything queued and release the waiting publishers."""
        self.control.clear()
        self.data.clear()
        self.wake_space_waiters()


@dataclass(eq=False, slots=True)
class _Worker:
    """A route's worker task: takes messages from the inbox and runs the chain on them.

    An isolated route (``interrupt_on``, ``exclusive``) runs each trigger in a task
    of its own, so that the run can be cancelled between chunks; a plain route
    drains its queue without going back to the event loop for every message.
    """

    _route: Route
    _inbox: _Inbox
    _chain: _StepChain
    _fairness: _Fairness
    isolated: bool = False
    busy: bool = False
    run: _Run | None = None
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        """Start the task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._work(), name=f"route {self._route.name}"
            )

    async def stop(self) -> None:
        """Cancel the task (and with it any run) and wait for it to end."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        if task is asyncio.current_task():
            return  # stopped from inside its own route: it ends when this step returns
        done, _ = await asyncio.wait((task,), timeout=_CANCEL_TIMEOUT_S)
        if not done:
            logger.warning(
                "route %s did not stop within %.1f s", self._route.name, _CANCEL_TIMEOUT_S
            )

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        inbox, fairness, steps = self._inbox, self._fairness, self._chain
        control, data = inbox.control, inbox.data
        try:
            while True:
                if control:
                    message = control.popleft()
                elif data:
                    message = data.popleft()
                else:
                    self.busy = False
                    fairness.left = FAIRNESS_BUDGET
                    wakeup = inbox.wakeup = loop.create_future()
                    await wakeup
                    continue
                self.busy = True
                if inbox.space_waiters:
                    inbox.wake_space_waiters()
                if self.isolated:
                    await self._run_isolated(loop, message)
                    continue
                # Plain routes: handle this message and any data queued behind it in
                # one go (a control event still goes first as soon as one arrives).
                chain = steps.compiled or steps.sink()
                while True:
                    try:
                        pending = chain(message, None)
                        if pending is not None:
                            await pending
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        await self._route._report(exc)
                    fairness.left -= 1
                    if fairness.left <= 0:
                        await fairness.pause()
                    if control or not data or self.isolated:
                        break
                    message = data.popleft()
                    if inbox.space_waiters:
                        inbox.wake_space_waiters()
                    if steps.compiled is not chain:
                        chain = steps.compiled or steps.sink()
        finally:
            self.busy = False
            inbox.wakeup = None
            current = self.run
            if current is not None and current.task is not None and not current.task.done():
                _cancel_run(current)
                await asyncio.wait((current.task,), timeout=_CANCEL_TIMEOUT_S)
            self.run = None

    async def _run_isolated(self, loop: asyncio.AbstractEventLoop, message: Message) -> None:
        run = _Run()
        run.task = loop.create_task(self._execute(message, run), name=f"run {self._route.name}")
        self.run = run
        # asyncio.wait, not await: a cancelled run must not cancel the worker.
        await asyncio.wait((run.task,))
        self.run = None

    async def _execute(self, message: Message, run: _Run) -> None:
        try:
            pending = self._chain.sink()(message, run)
            if pending is not None:
                await pending
        except asyncio.CancelledError:
            if not run.interrupted:
                raise
            # An interrupted run ends quietly: the worker goes on with the next trigger.
        except Exception as exc:
            await self._route._report(exc)


class _StepChain:
    """A route's steps, compiled once into a chain of plain functions ("sinks").

    Each sink takes a value and the run, does its step synchronously, and calls the
    next sink. A sink returns None when the chain is done, or an awaitable when it
    must wait (an async map or filter, a stream stage, a full queue); only then is
    a coroutine made. This keeps a chunk's trip through a route cheap.
    """

    def __init__(self, bridge: Bridge, fairness: _Fairness) -> None:
        self._bridge = bridge
        self._node_id = bridge.node_id
        self._fairness = fairness
        self._steps: list[tuple[int, Any]] = []
        self.compiled: Sink | None = None

    def add(self, kind: int, fn: Any) -> None:
        self._steps.append((kind, fn))
        self.compiled = None

    def sink(self) -> Sink:
        """The first sink of the chain (compiled on first use after a change)."""
        chain = self.compiled
        if chain is None:
            chain = self.compiled = self._compile()
        return chain

    def _compile(self) -> Sink:
        sink: Sink = _end_of_chain
        for kind, fn in reversed(self._steps):
            if kind == _MAP:
                sink = self._map_sink(fn, sink)
            elif kind == _FILTER:
                sink = self._filter_sink(fn, sink)
            elif kind == _STREAM:
                sink = self._stream_sink(fn, sink)
            else:
                sink = self._broadcast_sink(fn, sink)
        return sink

    def _map_sink(self, fn: Callable[[Message], Any], after: Sink) -> Sink:
        node_id = self._node_id

        def map_step(value: Any, run: _Run | None) -> Awaitable[None] | None:
            result = fn(value if type(value) is Message else Message(node_id, value))
            if result is None:
                return None
            if hasattr(result, "__await__"):
                return _continue_after_map(result, after, run)
            return after(result, run)

        return map_step

    def _filter_sink(self, fn: Callable[[Message], Any], after: Sink) -> Sink:
        node_id = self._node_id

        def filter_step(value: Any, run: _Run | None) -> Awaitable[None] | None:
            passed = fn(value if type(value) is Message else Message(node_id, value))
            if hasattr(passed, "__await__"):
                return _continue_after_filter(passed, value, after, run)
            return after(value, run) if passed else None

        return filter_step

    def _stream_sink(self, fn: Callable[[Message], Any], after: Sink) -> Sink:
        node_id = self._node_id
        pump = self._pump

        def stream_step(value: Any, run: _Run | None) -> Awaitable[None] | None:
            return pump(
                fn(value if type(value) is Message else Message(node_id, value)), after, run
            )

        return stream_step

    def _broadcast_sink(self, event_cls: type[Any] | None, after: Sink) -> Sink:
        publish = self._publish
        last = after is _end_of_chain

        def broadcast_step(value: Any, run: _Run | None) -> Awaitable[None] | None:
            waiting = publish(value, event_cls, run)
            if last:
                return waiting
            if waiting is not None:
                return _continue_after_wait(waiting, value, after, run)
            return after(value, run)

        return broadcast_step

    async def _pump(self, produced: Any, after: Sink, run: _Run | None) -> None:
        """Iterate what a stream stage produced, sending each chunk down the chain."""
        if type(produced) is not AsyncGeneratorType:
            if not hasattr(produced, "__aiter__") and hasattr(produced, "__await__"):
                produced = await produced
            if produced is None:
                return
            if not hasattr(produced, "__aiter__"):
                await self._pump_iterable(produced, after, run)
                return
            produced = produced.__aiter__()
        fairness = self._fairness
        try:
            async for chunk in produced:
                if run is not None and run.interrupted:
                    raise asyncio.CancelledError
                pending = after(chunk, run)
                if pending is not None:
                    await pending
                fairness.left -= 1
                if fairness.left <= 0:
                    await fairness.pause()
        except BaseException as exc:
            await close_async_iterator(produced, exc)
            raise

    async def _pump_iterable(self, produced: Any, after: Sink, run: _Run | None) -> None:
        fairness = self._fairness
        iterator = iter(produced)
        try:
            for chunk in iterator:
                if run is not None and run.interrupted:
                    raise asyncio.CancelledError
                pending = after(chunk, run)
                if pending is not None:
                    await pending
                fairness.left -= 1
                if fairness.left <= 0:
                    await fairness.pause()
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _publish(
        self, value: Any, event_cls: type[Any] | None, run: _Run | None
    ) -> Coroutine[Any, Any, None] | None:
        """Broadcast ``value``; an awaitable if some blocking queue was full."""
        event = value.event if type(value) is Message else value
        if event_cls is not None and not isinstance(event, event_cls):
            event = event_cls() if event is None else event_cls(event)
        if event is None:
            return None
        if run is not None and run.interrupted:
            raise asyncio.CancelledError
        bus = self._bridge.bus
        if bus is None or not bus.running:
            return None
        return bus.offer(Message(self._node_id, event))


class Route:
    """A chain of steps run for every message that matches its trigger.

    Built by :meth:`Bridge.on`; every builder method returns the route itself.

    Attributes:
        trigger: The event class (or classes, or ``"*"``) that starts the route.
        name: Used in task names, logs and ``AgentError.source``.
        suspended: Whether triggers are currently ignored (see :meth:`suspend_on`).
        dropped: Data messages dropped because the queue was full (``drop_oldest``).
        errors: Exceptions raised by this route's steps so far.
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
        self._node_id = bridge.node_id
        self.trigger = trigger
        self._source = source
        self._filter_fn = filter_fn
        self._property_filters = tuple(property_filters.items())
        fairness = _Fairness()
        self._chain = _StepChain(bridge, fairness)
        self._inbox = _Inbox()
        self._worker = _Worker(self, self._inbox, self._chain, fairness)
        self._interrupt_types: tuple[type[Any], ...] = ()
        self._interrupt_handler: Callable[[Message], Any] | None = None
        self._suspend_types: tuple[type[Any], ...] = ()
        self._resume_types: tuple[type[Any], ...] = ()
        self._exclusive = False
        self.queue_size = bridge.queue_size
        self.when_full: OverflowPolicy = bridge.when_full
        self.suspended = False
        self.name = f"{bridge.node_id}:{_trigger_name(trigger)}"
        self._stopped = False
        self.dropped = 0
        self.errors = 0

    # --- builder -----------------------------------------------------------

    def map(self, fn: Callable[[Message], Any]) -> Route:
        """Call ``fn(message)`` (sync or async); its return value flows on."""
        self._chain.add(_MAP, fn)
        return self

    def filter(self, fn: Callable[[Message], Any]) -> Route:
        """Continue only when ``fn(message)`` (sync or async) is true."""
        self._chain.add(_FILTER, fn)
        return self

    def stream(self, fn: Callable[[Message], Any]) -> Route:
        """Flat-map: every value ``fn(message)`` yields flows on, as it is produced.

        ``fn`` may be an async generator function, return an async iterable, a
        coroutine that gives an iterable, or a plain iterable.
        """
        self._chain.add(_STREAM, fn)
        return self

    def broadcast(self, event_cls: type[Any] | None = None) -> Route:
        """Publish every value that reaches this step on the bus, at once.

        With ``event_cls``, a value that is not already an instance is wrapped as
        ``event_cls(value)`` (or ``event_cls()`` for ``None``). The value flows on
        unchanged to any later step.
        """
        self._chain.add(_BROADCAST, event_cls)
        return self

    def interrupt_on(
        self, *event_types: type[Any], handler: Callable[[Message], Any] | None = None
    ) -> Route:
        """Cancel the running run when one of ``event_types`` arrives.

        ``handler(message)`` (sync, or async and then run in a task) is called once
        per interrupt that found work to cancel, before the run's ``finally``
        blocks execute.
        """
        self._interrupt_types += event_types
        if handler is not None:
            self._interrupt_handler = handler
        self._worker.isolated = True
        self._bridge._invalidate()
        return self

    def suspend_on(self, *event_types: type[Any]) -> Route:
        """Ignore triggers after one of ``event_types`` until ``resume_on`` fires.

        A run in progress and triggers already queued are not affected.
        """
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
        anything still queued (a voice turn must never run two generations).

        The cancelled run sees ``CancelledError`` like an interrupted one; no
        interrupt handler is called.
        """
        self._exclusive = True
        self._worker.isolated = True
        return self

    def queue(self, size: int | None = None, *, when_full: OverflowPolicy | None = None) -> Route:
        """Override the bridge's queue size and overflow policy for this route."""
        if size is not None:
            if size < 1:
                raise ValueError("queue size must be at least 1")
            self.queue_size = size
        if when_full is not None:
            self.when_full = when_full
        return self

    def named(self, name: str) -> Route:
        """Name the route (used in task names, logs and ``AgentError.source``)."""
        self.name = name
        return self

    # --- state ---------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether the route has queued triggers or is handling one right now."""
        inbox = self._inbox
        return bool(inbox.control or inbox.data) or self._worker.busy

    # --- matching and delivery (called by the bus, synchronously) ----------------------

    def triggered_by(self, event_type: type[Any]) -> bool:
        """Whether events of ``event_type`` start this route (before filters)."""
        trigger = self.trigger
        return trigger == "*" or (not isinstance(trigger, str) and issubclass(event_type, trigger))

    def controlled_by(self, event_type: type[Any]) -> bool:
        """Whether events of ``event_type`` interrupt, suspend or resume this route."""
        types = self._interrupt_types + self._suspend_types + self._resume_types
        return bool(types) and issubclass(event_type, types)

    def accepts(self, message: Message) -> bool:
        """Whether ``message`` passes this route's source, property and function filters."""
        if self.suspended:
            return False
        source = self._source
        if source is None:
            if message.source == self._node_id:
                return False
        elif message.source != source:
            return False
        if self._property_filters:
            event = message.event
            for key, expected in self._property_filters:
                if getattr(event, key, _MISSING) != expected:
                    return False
        filter_fn = self._filter_fn
        if filter_fn is None:
            return True
        try:
            return bool(filter_fn(message))
        except Exception as exc:
            self._bridge._spawn(self._report(exc), f"report {self.name}")
            return False

    def offer(self, message: Message) -> bool:
        """Queue ``message`` if it passes the filters (the bus's fast path).

        Returns ``False`` only when the message was accepted but the queue is full
        and blocks; the caller then waits with :meth:`space` and retries
        :meth:`enqueue`.
        """
        # accepts() and enqueue() inlined for the common case: this runs for every
        # chunk and every listening route.
        if self.suspended or self._stopped:
            return True
        if (
            self._filter_fn is not None
            or self._property_filters
            or self._source is not None
            or self._exclusive
        ):
            return not self.accepts(message) or self.enqueue(message)
        if message.source == self._node_id:
            return True
        if isinstance(message.event, ControlEvent):
            return self.enqueue(message)
        inbox = self._inbox
        data = inbox.data
        if len(data) >= self.queue_size:
            if self.when_full == "block":
                return False
            data.popleft()
            self.dropped += 1
        data.append(message)
        wakeup = inbox.wakeup
        if wakeup is not None:
            inbox.wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)
        return True

    def enqueue(self, message: Message) -> bool:
        """Queue ``message``; ``False`` (and not queued) if full and blocking."""
        if self._stopped:
            return True
        inbox = self._inbox
        if self._exclusive:
            inbox.control.clear()
            inbox.data.clear()
            _cancel_run(self._worker.run)
        if isinstance(message.event, ControlEvent):
            inbox.control.append(message)
        else:
            data = inbox.data
            if len(data) >= self.queue_size:
                if self.when_full == "block":
                    return False
                data.popleft()
                self.dropped += 1
            data.append(message)
        inbox.wake_worker()
        return True

    def space(self) -> asyncio.Future[None]:
        """A future that is done when the queue may have room again."""
        return self._inbox.space(self.queue_size, stopped=self._stopped)

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
        """Cancel the running run and drop queued triggers; ``True`` if there were any.

        The interrupt handler is called (with ``message``) only when there was
        something to cancel.
        """
        run = self._worker.run
        running = (
            run is not None and not run.interrupted and run.task is not None and not run.task.done()
        )
        inbox = self._inbox
        if not running and not inbox.data:
            return False
        inbox.data.clear()
        inbox.wake_space_waiters()
        if running:
            _cancel_run(run)
        handler = self._interrupt_handler
        if handler is not None and message is not None:
            self._bridge._call_handler(handler, message, self.name)
        return True

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker task on the running loop (idempotent)."""
        self._stopped = False
        self._worker.start()

    async def stop(self) -> None:
        """Cancel the worker and any run, drop queued messages, release publishers."""
        self._stopped = True
        self._inbox.clear()
        await self._worker.stop()

    async def _report(self, exc: Exception) -> None:
        """Log a step's exception and publish it as ``AgentError``."""
        self.errors += 1
        logger.error("route %s failed", self.name, exc_info=exc)
        await self._bridge.publish(
            AgentError(error=f"{type(exc).__name__}: {exc}", source=self.name)
        )


class Bridge:
    """Connects one node to the bus; ``on(...)`` starts a route.

    Args:
        node: the node (its id is ``node.id``, the string itself, or the class name).
        queue_size: how many data messages each route of this bridge may hold
            (a route can override it with :meth:`Route.queue`).
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    @property
    def routes(self) -> tuple[Route, ...]:
        """This bridge's routes, in the order they were made."""
        return tuple(self._routes)

    def on(
        self,
        event: Trigger,
        *,
        source: str | None = None,
        filter_fn: Callable[[Message], bool] | None = None,
        **property_filters: Any,
    ) -> Route:
        """Start a route for ``event``: a class (subclasses match too), a tuple of
        classes, or ``"*"`` for everything.

        Args:
            event: What triggers the route.
            source: only messages from this node id.
            filter_fn: only messages for which ``filter_fn(message)`` is true.
            property_filters: only events whose attributes equal these values.

        Returns:
            The new route, to chain builder calls on.
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
        """Remember the bus this bridge publishes on (called by ``register_bridge``)."""
        self.bus = bus

    def start(self) -> None:
        """Start every route's worker (called by the bus)."""
        self._started = True
        for route in self._routes:
            route.start()

    async def stop(self) -> None:
        """Stop every route and the tasks this bridge started (called by the bus)."""
        self._started = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(route.stop() for route in self._routes))
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CANCEL_TIMEOUT_S)

    async def publish(self, event: Any) -> None:
        """Broadcast ``event`` from this bridge's node (for nodes that push)."""
        if self.bus is not None:
            await self.bus.broadcast(Message(self.node_id, event))

    # --- internals ----------------------------------------------------------------

    def _invalidate(self) -> None:
        if self.bus is not None:
            self.bus.invalidate()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coroutine`` in a task this bridge owns (cancelled on stop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coroutine.close()
            return
        task = loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _call_handler(self, handler: Callable[[Message], Any], message: Message, name: str) -> None:
        try:
            result = handler(message)
        except Exception:
            logger.exception("interrupt handler of %s failed", name)
            return
        if hasattr(result, "__await__"):
            self._spawn(_await(result), f"interrupt handler of {name}")


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _end_of_chain(value: Any, run: _Run | None) -> None:
    return None


async def _continue_after_map(awaitable: Awaitable[Any], after: Sink, run: _Run | None) -> None:
    value = await awaitable
    if value is not None:
        pending = after(value, run)
        if pending is not None:
            await pending


async def _continue_after_filter(
    awaitable: Awaitable[Any], value: Any, after: Sink, run: _Run | None
) -> None:
    if await awaitable:
        pending = after(value, run)
        if pending is not None:
            await pending


async def _continue_after_wait(
    waiting: Awaitable[None], value: Any, after: Sink, run: _Run | None
) -> None:
    await waiting
    pending = after(value, run)
    if pending is not None:
        await pending
