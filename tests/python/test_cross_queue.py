"""Queues across languages, with real processes: the C and C++ queue tools
(tests/c/tool_queue.c, tests/cpp/tool_queue.cpp, built into $MPX_BUILD by `make native`) and
Python (mpx.Queue) on one named queue.

The tools put messages "ID:SEQ" padded with "|" and 'x's to a size, and their consumer checks
the format and each producer's order (--exact: no gaps), then prints per-producer counts and
the sum of the messages' FNV-1a hashes. Python speaks the same format here with put_bytes /
get_bytes (raw bytes: the interchange between languages).

Tool exit codes: 0 ok, 1 a check failed, 2 usage, 100 - status for an mpx error
(107 = MPX_E_CLOSED). Every subprocess and every wait is bounded.
"""

import collections
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import mpx
from patterns import fnv1a

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MPX_BUILD", ROOT / "build"))
TOOLS = {
    "c": BUILD / "tests" / "c" / "tool_queue",
    "cpp": BUILD / "tests" / "cpp" / "tool_queue",
}
TIMEOUT = 60  # seconds for any subprocess or wait; a hang is a failure
EXIT_CLOSED = 100 + 7
# The tools wait at most this long in any call (their own bound, below ours).
TOOL_ENV = dict(os.environ, MPX_TOOL_TIMEOUT="40")


@pytest.fixture(scope="module", autouse=True)
def tools_built():
    for tool in TOOLS.values():
        assert tool.exists(), "%s is missing: run `make native` (or set MPX_BUILD)" % tool


@pytest.fixture
def new_name(make_name):
    """Names for this test, removed afterwards whatever happened."""
    made = []

    def make(tag="q"):
        name = make_name(tag)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            try:
                mpx.Queue.unlink_name(name)
            except FileNotFoundError:
                pass


class Tool:
    """A running tool (stdout/stderr captured), finished with .finish()."""

    def __init__(self, lang, *args):
        from conftest import OWN_PIDS

        self.args = [str(TOOLS[lang]), *map(str, args)]
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=TOOL_ENV)
        OWN_PIDS.add(self.p.pid)

    def finish(self, expect=0, timeout=TIMEOUT):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate(timeout=10)
            pytest.fail("%s hung; stderr: %s" % (" ".join(self.args), err))
        assert self.p.returncode == expect, "%s exited %d, wanted %d; stderr: %s" % (
            " ".join(self.args), self.p.returncode, expect, err)
        self.out, self.err = out, err
        return out


def tool(lang, *args, expect=0):
    return Tool(lang, *args).finish(expect)


def message(ident, seq, size=0):
    """A message as the tools make them: "ID:SEQ", padded to size with "|" and 'x's."""
    m = b"%d:%d" % (ident, seq)
    if size > len(m):
        m += b"|" + b"x" * (size - len(m) - 1)
    return m


def parse(m):
    """(ID, SEQ) of a tool-format message, checking its padding; ValueError if malformed."""
    head, bar, pad = m.partition(b"|")
    if bar and pad.strip(b"x"):
        raise ValueError("bad padding in %r" % m[:60])
    ident, seq = head.split(b":")
    return int(ident), int(seq)


def checksum(messages):
    return sum(fnv1a(m) for m in messages) & 0xFFFFFFFF


def tool_report(out):
    """The consumer tool's summary: ({producer: (count, first, last)}, consumed, checksum)."""
    producers = {}
    for ident, n, first, last in re.findall(r"^producer (\d+): (\d+) messages, seq (\d+)\.\.(-?\d+)$", out, re.M):
        producers[int(ident)] = (int(n), int(first), int(last))
    m = re.search(r"^consumed (\d+) messages, checksum ([0-9a-f]{8})$", out, re.M)
    assert m, "no summary in %r" % out[-500:]
    return producers, int(m.group(1)), int(m.group(2), 16)


class Checker:
    """Collects what one consumer got: each producer's messages must arrive in order."""

    def __init__(self):
        self.last = {}
        self.got = collections.Counter()
        self.messages = []

    def add(self, m):
        ident, seq = parse(m)
        assert seq > self.last.get(ident, -1), "producer %d: %d after %d" % (ident, seq, self.last.get(ident, -1))
        self.last[ident] = seq
        self.got[(ident, seq)] += 1
        self.messages.append(m)


def python_producer(name, ident, count, size, batch):
    """A Python producer process (mpx fork): put_bytes, or put_many_bytes in batches."""

    def run():
        q = mpx.Queue.open(name)
        if batch:
            for seq in range(0, count, batch):
                q.put_many_bytes([message(ident, s, size) for s in range(seq, min(count, seq + batch))],
                                 timeout=TIMEOUT)
        else:
            for seq in range(count):
                q.put_bytes(message(ident, seq, size), timeout=TIMEOUT)

    p = mpx.get_context("fork").Process(target=run)
    p.start()
    return p


def join(*procs):
    for p in procs:
        p.join(TIMEOUT)
        if p.exitcode is None:
            p.kill()
            p.join(10)
            pytest.fail("a Python child hung")
        assert p.exitcode == 0


def _python_consumer_child(name, path, count, use_batches):
    q = mpx.Queue.open(name)
    got = []
    while len(got) < count:
        if use_batches:
            got += q.get_many_bytes(min(100, count - len(got)), timeout=TIMEOUT)
        else:
            got.append(q.get_bytes(timeout=TIMEOUT))
    with open(path, "wb") as f:
        f.write(b"\n".join(got))


#
# C producers, Python consumers
#


@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_tool_producers_python_consumers(lang, new_name, tmp_path):
    name = new_name()
    q = mpx.Queue.create(name, capacity=32768)  # small: producers wait for the consumers
    count, sizes = 3000, {1: 0, 2: 48, 3: 900}
    producers = [Tool(lang, "produce", name, ident, count, size) for ident, size in sizes.items()]
    # Two Python consumers: this process (one message at a time) and a child (batches).
    path = tmp_path / "child.out"
    total = count * len(sizes)
    child_share = total // 3
    child = mpx.get_context("fork").Process(target=_python_consumer_child, args=(name, str(path), child_share, True))
    child.start()
    mine = Checker()
    try:
        for _ in range(total - child_share):
            mine.add(q.get_bytes(timeout=TIMEOUT))
    finally:
        for p in producers:
            p.finish()
        join(child)
    theirs = Checker()
    for m in path.read_bytes().split(b"\n"):
        theirs.add(m)
    together = mine.got + theirs.got
    assert sum(together.values()) == total
    assert set(together) == {(ident, seq) for ident in sizes for seq in range(count)}  # each exactly once
    for m in mine.messages + theirs.messages:
        ident, seq = parse(m)
        assert m == message(ident, seq, sizes[ident])  # byte for byte as the tool made it
    with pytest.raises(mpx.queues.Empty):
        q.get_bytes(timeout=0.05)


#
# Python producers, C++ (and C) consumer
#


@pytest.mark.parametrize("lang", ["cpp", "c"])
def test_python_producers_tool_consumer(lang, new_name):
    name = new_name()
    q = mpx.Queue.create(name, capacity=16384)
    count = 2500
    plan = {7: (0, 0), 8: (30, 50), 9: (200, 0)}  # ident: (size, batch)
    consumer = Tool(lang, "consume", name, count * (len(plan) + 1), "--exact")
    procs = [python_producer(name, ident, count, size, batch) for ident, (size, batch) in plan.items()]
    sent = []
    for seq in range(count):  # and this process
        m = message(10, seq, 20)
        q.put_bytes(m, timeout=TIMEOUT)
        sent.append(m)
    join(*procs)
    out = consumer.finish()
    producers, consumed, total = tool_report(out)
    assert consumed == count * 4
    assert producers == {ident: (count, 0, count - 1) for ident in list(plan) + [10]}
    for ident, (size, _) in plan.items():
        sent += [message(ident, seq, size) for seq in range(count)]
    assert total == checksum(sent)  # every byte of every message as Python put it
    assert q.empty()


#
# Three languages producing, one consumer
#


@pytest.mark.parametrize("consumer_lang", ["python", "c", "cpp"])
def test_mixed_producers_one_consumer(consumer_lang, new_name):
    name = new_name()
    # Made by the C tool with a message limit; every language opens it by name.
    tool("c", "create", name, 65536, 200)
    q = mpx.Queue.open(name)
    assert q.maxsize == 200 and type(q) is mpx.Queue
    count = 2000
    # ident: (language, size)
    plan = {1: ("c", 0), 2: ("c", 100), 3: ("cpp", 0), 4: ("cpp", 333), 5: ("python", 12), 6: ("python", 64)}
    total = count * len(plan)
    consumer = Tool(consumer_lang, "consume", name, total, "--exact") if consumer_lang != "python" else None
    tools = [Tool(lang, "produce", name, ident, count, size) for ident, (lang, size) in plan.items() if lang != "python"]
    procs = [python_producer(name, ident, count, size, 25 if ident == 6 else 0)
             for ident, (lang, size) in plan.items() if lang == "python"]
    expected = [message(ident, seq, size) for ident, (_, size) in plan.items() for seq in range(count)]
    try:
        if consumer is None:
            check = Checker()
            for _ in range(total):
                check.add(q.get_bytes(timeout=TIMEOUT))
            # every message exactly once, in each producer's order (checked as they came)
            assert sorted(check.messages) == sorted(expected)
            assert all(n == 1 for n in check.got.values())
        else:
            producers, consumed, total_sum = tool_report(consumer.finish())
            assert consumed == total
            assert producers == {ident: (count, 0, count - 1) for ident in plan}
            assert total_sum == checksum(expected)
    finally:
        for t in tools:
            t.finish()
        join(*procs)
    assert q.qsize() == 0


#
# Variants, shutdown, sizes, kinds across languages
#


def test_joinable_queue_made_in_c(new_name):
    name = new_name()
    tool("cpp", "create", name, 8192, 0, "joinable")
    jq = mpx.Queue.open(name)
    assert type(jq) is mpx.JoinableQueue
    tool("c", "produce", name, 4, 50)
    assert jq.join(timeout=0.01) is False
    for seq in range(50):
        assert jq.get_bytes(timeout=TIMEOUT) == message(4, seq)
        jq.task_done()
    assert jq.join(timeout=TIMEOUT) is True
    with pytest.raises(ValueError, match="too many times"):
        jq.task_done()
    # a JoinableQueue made in Python: the C++ consumer's gets leave the tasks for task_done
    name2 = new_name()
    jq2 = mpx.JoinableQueue.create(name2)
    jq2.put_bytes(message(1, 0))
    tool("cpp", "consume", name2, 1, "--exact")
    assert jq2.unfinished_tasks() == 1
    jq2.task_done()
    assert jq2.join(timeout=TIMEOUT)


def test_simple_queue_made_in_c(new_name):
    name = new_name()
    tool("c", "create", name, 4096, 0, "simple")
    sq = mpx.SimpleQueue.open(name)
    assert type(mpx.Queue.open(name)) is mpx.Queue and sq.maxsize == 0
    sq.put_bytes(message(3, 0))
    sq.put({"pickled": True})  # a C reader sees the pickle's bytes
    assert "drained 2" in tool("cpp", "drain", name)
    assert sq.empty()


@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_shutdown_across_languages(lang, new_name):
    # A tool's shutdown wakes a Python get blocked in this process.
    name = new_name()
    q = mpx.Queue.create(name)
    q.put_bytes(message(1, 0))
    t = Tool(lang, "shutdown", name)
    assert q.get_bytes(timeout=TIMEOUT) == message(1, 0)  # what was left drains first
    with pytest.raises(mpx.QueueClosed):
        q.get_bytes(timeout=TIMEOUT)
    t.finish()
    # Python's shutdown wakes a tool blocked in get: it fails with MPX_E_CLOSED (107).
    name2 = new_name()
    q2 = mpx.Queue.create(name2)
    consumer = Tool(lang, "consume", name2, 5)
    q2.put_bytes(message(2, 0))
    deadline = time.monotonic() + TIMEOUT
    while not q2.empty():  # the tool took it and now waits for more
        assert time.monotonic() < deadline, "the tool never took its message"
        time.sleep(0.01)
    time.sleep(0.1)
    q2.shutdown()
    consumer.finish(expect=EXIT_CLOSED)
    # ...and a tool's put into a shut-down queue fails the same way.
    tool(lang, "produce", name2, 1, 1, expect=EXIT_CLOSED)


@pytest.mark.parametrize("lang", ["c", "cpp"])
def test_large_messages_across_languages(lang, new_name):
    name = new_name()
    q = mpx.Queue.create(name, capacity=1 << 20)
    size = 300_000  # beyond Python's first receive buffer (64 KiB) and the tools' (4 KiB)
    producer = Tool(lang, "produce", name, 5, 6, size)
    for seq in range(6):
        assert q.get_bytes(timeout=TIMEOUT) == message(5, seq, size)
    producer.finish()
    consumer = Tool(lang, "consume", name, 4, "--exact")
    sent = [message(6, seq, size) for seq in range(4)]
    q.put_many_bytes(sent[:2], timeout=TIMEOUT)
    for m in sent[2:]:
        q.put_bytes(m, timeout=TIMEOUT)
    producers, consumed, total = tool_report(consumer.finish())
    assert producers == {6: (4, 0, 3)} and total == checksum(sent)
    # Too big for the queue: refused at once in every language.
    with pytest.raises(mpx.MessageTooBig):
        q.put_bytes(b"x" * (q.max_message + 1))
    tool(lang, "produce", name, 1, 1, q.max_message + 1, expect=100 + 8)  # MPX_E_TOO_BIG


def test_wrong_kind_across_languages(new_name):
    name = new_name()
    lock = mpx.Lock.create(name)
    try:
        with pytest.raises(mpx.KindError):
            mpx.Queue.open(name)
        tool("c", "consume", name, 1, expect=100 + 9)  # MPX_E_KIND from C too
        tool("cpp", "produce", name, 1, 1, expect=100 + 9)
    finally:
        lock.unlink()
        lock.close()
    name2 = new_name()
    tool("c", "create", name2, 4096)
    with pytest.raises(mpx.KindError):
        mpx.Lock.open(name2)
