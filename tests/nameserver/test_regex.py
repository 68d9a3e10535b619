"""Bounded regex matching: which patterns run in-process, and the killable sandbox for the rest."""

from __future__ import annotations

import threading
import time

import pytest
from pyrite.core.errors import NamingError
from pyrite.nameserver import regexmatch


@pytest.fixture(autouse=True)
def _stop_workers():
    yield
    regexmatch.shutdown()


@pytest.mark.parametrize(
    "pattern",
    [r"test\..*", r".+other..", r"name.$", r"\d{4}", "(x|o)th", "(?:ab)+c", "[a-z]*$", "", "literal", "(?i)ABC.*"],
)
def test_linear_patterns(pattern):
    assert regexmatch.is_linear(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",
        r"(.*)*x",
        r"(a|a)*b",
        r"a.*b.*c",
        r"x?x?x?xxx",
        r"(\w+)\1",
        r"(?=a.*)a",
        r"(a|ab)(c|bcd)",
        "(?(1)a|b)",
    ],
)
def test_patterns_for_the_sandbox(pattern):
    assert not regexmatch.is_linear(pattern)


NAMES = ["test.a", "test.b", "xother.a", "aaaa", "abc", "a-b-c"]


@pytest.mark.parametrize("pattern", [r"test\..*", r"a.*b.*c", r"(a|b)+$", r"(a+)+", r".*", r"x?o?"])
def test_same_answer_as_re(pattern):
    import re

    expected = [n for n in NAMES if re.match(pattern, n)]
    matched, everything = regexmatch.filter_names(pattern, NAMES)
    assert matched == expected
    assert everything == (re.match(pattern, "") is not None)


def test_catastrophic_pattern_is_killed_and_the_pool_recovers(monkeypatch):
    monkeypatch.setattr(regexmatch, "TIMEOUT", 1.0)
    start = time.monotonic()
    with pytest.raises(NamingError, match="took longer than 1 s"):
        regexmatch.filter_names(r"(a+)+$", ["a" * 40 + "!"])
    assert time.monotonic() - start < 10
    # the sandbox still works afterwards
    assert regexmatch.filter_names(r"a.*c", ["abc", "ab"]) == (["abc"], False)


def test_many_concurrent_sandboxed_queries():
    results = []

    def query(i):
        results.append(regexmatch.filter_names(r"n.*1.*", [f"n{i}1", "n2", f"n1{i}"]))

    threads = [threading.Thread(target=query, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 6
    assert all(everything is False for _, everything in results)
    assert sorted(len(matched) for matched, _ in results) == [2] * 6


def test_compile_refusals():
    with pytest.raises(NamingError, match="invalid regex"):
        regexmatch.compile_regex("(")
    with pytest.raises(NamingError, match="longer than"):
        regexmatch.compile_regex("x" * (regexmatch.MAX_PATTERN_LENGTH + 1))
    with pytest.raises(TypeError):
        regexmatch.compile_regex(b"bytes")


def test_no_sandbox_means_refusal(monkeypatch):
    monkeypatch.setattr(regexmatch._pool, "unavailable", "testing")
    with pytest.raises(NamingError, match="too complex"):
        regexmatch.filter_names(r"(a+)+$", ["aaa"])
    assert regexmatch.filter_names(r"a.*", ["abc", "x"]) == (["abc"], False)  # linear ones still work


def test_a_dead_idle_worker_is_replaced():
    assert regexmatch.filter_names(r"a.*b.*c", ["abc"]) == (["abc"], False)  # starts a worker
    idle = list(regexmatch._pool._idle)
    assert idle
    for worker in idle:
        worker.proc.kill()
        worker.proc.wait(timeout=5)
    assert regexmatch.filter_names(r"a.*b.*c", ["abc", "xbc"]) == (["abc"], False)
