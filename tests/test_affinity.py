"""--cpus: the CPU list notation, its checks, and pinning every thread of the process."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from coreactors.affinity import check_cpus, describe, mark_background_thread, parse_cpu_list
from coreactors.endpoints import AvailableEndpoints
from coreactors.service import make_store
from coreactors.stores.sqlite import SQLiteTrackerStore
from coreactors.tap import Options
from twisted.python import usage

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="this platform cannot pin threads to CPUs")


def test_cpu_lists_read_like_taskset():
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0,2") == {0, 2}
    assert parse_cpu_list("0-3,6") == {0, 1, 2, 3, 6}
    assert parse_cpu_list(" 1 , 3-4 ") == {1, 3, 4}
    for bad in ("", "a", "3-1", "-1", "1-", "1,,2", "0x1"):
        with pytest.raises(ValueError, match="not a CPU list"):
            parse_cpu_list(bad)


def test_describe_gives_the_short_notation_back():
    assert describe(frozenset({0, 1, 2, 3, 6})) == "0-3,6"
    assert describe(frozenset({5})) == "5"
    assert describe(frozenset({0, 2, 4})) == "0,2,4"
    for text in ("0", "0-3,6", "1,3-4,7-9"):
        assert describe(parse_cpu_list(text)) == text


@needs_affinity
def test_cpus_this_process_may_not_use_are_refused():
    allowed = os.sched_getaffinity(0)
    check_cpus(frozenset(allowed))
    missing = max(allowed) + 1
    with pytest.raises(ValueError, match="CPU {} is not available".format(missing)):
        check_cpus(frozenset({missing}))


@needs_affinity
def test_the_flag_is_checked_when_the_options_are_read():
    options = Options()
    cpu = min(os.sched_getaffinity(0))
    options.parseOptions(["--cpus", str(cpu)])
    assert options["cpus"] == {cpu}
    with pytest.raises(usage.UsageError, match="--cpus: 'x' is not a CPU list"):
        Options().parseOptions(["--cpus", "x"])
    with pytest.raises(usage.UsageError, match="--cpus: CPU 4096 is not available"):
        Options().parseOptions(["--cpus", "4096"])


@needs_affinity
def test_pinning_moves_running_threads_and_later_ones():
    # In a child process: pinning this test process would slow the rest of the suite.
    cpu = max(os.sched_getaffinity(0))
    script = textwrap.dedent("""
        import os, threading
        from coreactors.affinity import pin_process
        started = threading.Event(); finish = threading.Event()
        def wait():
            started.set(); finish.wait()
        before = threading.Thread(target=wait); before.start(); started.wait()
        pin_process(frozenset({%d}))
        after = threading.Thread(target=finish.wait); after.start()
        sets = {tid: os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")}
        finish.set(); before.join(); after.join()
        print(len(sets), sorted({tuple(sorted(s)) for s in sets.values()}))
    """ % cpu)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split(None, 1)
    assert int(out[0]) >= 3
    assert out[1].strip() == "[({},)]".format(cpu)


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH on this platform")
def test_the_store_writer_does_not_preempt_the_thread_that_wakes_it(tmp_path):
    # As the server builds its store (coreactors.service.make_store).
    store = make_store(AvailableEndpoints({}), str(tmp_path / "t.db"))
    plain = SQLiteTrackerStore(str(tmp_path / "plain.db"))
    try:
        store.append("ada", [{"event": "action", "name": "action_listen"}])
        plain.append("ada", [{"event": "action", "name": "action_listen"}])
        assert os.sched_getscheduler(store._writer.native_id) == os.SCHED_BATCH
        # Only the server's writer: the thread that made the store keeps the normal policy,
        # and a store built without the set-up leaves its writer alone.
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        assert os.sched_getscheduler(plain._writer.native_id) == os.SCHED_OTHER
    finally:
        store.close()
        plain.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH on this platform")
def test_marking_a_thread_as_background_changes_that_thread_only():
    seen = {}

    def run():
        seen["marked"] = mark_background_thread()
        seen["policy"] = os.sched_getscheduler(0)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == {"marked": True, "policy": os.SCHED_BATCH}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
