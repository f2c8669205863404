"""The pykka internals the ``worker_pool`` fast path leans on (coreactors/fastpaths/pykka_pool.py)
still have the shape it expects: a pykka release that renames or reshapes them fails here, not
in production. The pool's behaviour itself is tested in test_worker_pool.py."""

import inspect

import pykka
import pytest

from coreactors.actors.worker_pool import InlineWorkerPool
from coreactors.fastpaths.pykka_pool import PooledActor


@pytest.mark.parametrize("name, parameters", [
    ("_create_actor_inbox", []),
    ("_create_future", []),
    ("_start_actor_loop", ["self"]),
    ("_actor_loop_setup", ["self"]),
    ("_actor_loop_teardown", ["self"]),
    ("_handle_receive", ["self", "message"]),
    ("_handle_failure", ["self", "exception_type", "exception_value", "traceback"]),
    ("_stop", ["self"]),
])
def test_the_actor_hooks_exist_with_their_parameters(name, parameters):
    hook = inspect.getattr_static(pykka.Actor, name)
    function = hook.__func__ if isinstance(hook, staticmethod) else hook
    assert list(inspect.signature(function).parameters) == parameters


def test_start_registers_then_starts_the_loop_and_the_inbox_is_ours():
    pool = InlineWorkerPool(hold=True)
    started = []

    class Probe(PooledActor):
        def on_start(self):
            started.append(pykka.ActorRegistry.get_by_urn(self.actor_urn) is not None)
    ref = Probe.start(pool)
    try:
        assert started == []  # _start_actor_loop queued it on the pool, no thread
        pool.run()
        assert started == [True]  # registered before its loop began
    finally:
        ref.stop(block=False)
        pool.run()


def test_messages_arrive_in_envelopes_with_message_and_reply_to():
    seen = []

    class Probe(PooledActor):
        def _receive(self, envelope):
            seen.append((envelope.message, envelope.reply_to is not None))
            super()._receive(envelope)

        def on_receive(self, message):
            return message * 2
    pool = InlineWorkerPool()
    ref = Probe.start(pool)
    try:
        ref.tell(1)
        assert ref.ask(2) == 4
        assert seen == [(1, False), (2, True)]
    finally:
        ref.stop()


def test_the_teardown_drains_an_inbox_through_empty_and_get():
    pool = InlineWorkerPool(hold=True)
    ref = PooledActor.start(pool)
    pool.run()
    ref.stop(block=False)
    future = ref.ask("late", block=False)
    pool.run()
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=1)


def test_the_future_pykka_makes_for_asks_is_a_threading_future():
    assert isinstance(PooledActor._create_future(), pykka.ThreadingFuture)
