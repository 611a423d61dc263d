"""Experience memory: a real SQLite file, the real embedders (static model2vec, MiniLM), real processes.

Covers persistence, several processes writing and reading one file, a writer killed with SIGKILL,
eviction, hybrid (dense + BM25, RRF) retrieval, filters, and the errors bad input gets.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from junto.errors import ConfigError
from junto.memory.experience import RRF_K, Experience, ExperienceStore, normalize_problem, rrf_fuse

# a few unrelated problems, so that rankings have something to rank against
DISTRACTORS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "A train leaves the station at 3 pm travelling 60 miles per hour; when does it arrive 150 miles away?",
    "Return the greatest common divisor of two positive integers a and b.",
    "Given a list of numbers, return True if any two of them are closer than a given threshold.",
    "Janet's ducks lay 16 eggs per day; she eats three for breakfast and bakes muffins with four.",
    "Check whether a given integer is a prime number.",
    "Compute the area of a triangle from the lengths of its three sides.",
    "Count the vowels in a sentence.",
]


def _store(tmp_path: Path, name: str = "m.db", **kw) -> ExperienceStore:
    return ExperienceStore(tmp_path / name, kw.pop("embedder", "static"), **kw)


# -- basics ---------------------------------------------------------------------------------------------

def test_add_get_count_and_reopen(tmp_path):
    with _store(tmp_path) as store:
        before = time.time()
        eid = store.add(Experience("Return the sum of a list of integers.", "def f(xs):\n    return sum(xs)\n",
                                   score=1.0, verified=True, task="humaneval", source="canonical",
                                   meta={"task_id": "HumanEval/0", "tokens": 12}))
        tid = store.add(Experience("Solve word problems about money.", "Track each amount; answer with a number.",
                                   kind="template", source="template"))
        assert len(eid) == 16 and eid != tid
        assert store.count() == 2 and store.count("experience") == 1 and store.count("template") == 1
    again = ExperienceStore(tmp_path / "m.db")  # no embedder given: the stored one (static)
    assert again.spec == {"kind": "static"}
    exp = again.get(eid)
    assert exp is not None and exp.id == eid and before <= exp.created <= time.time()
    assert (exp.problem, exp.score, exp.verified, exp.task, exp.source, exp.kind) == (
        "Return the sum of a list of integers.", 1.0, True, "humaneval", "canonical", "experience")
    assert exp.solution == "def f(xs):\n    return sum(xs)\n" and exp.meta == {"task_id": "HumanEval/0", "tokens": 12}
    assert again.get("nope") is None
    # kinds never mix in search
    assert [e.id for e, _ in again.search("sum of integers", k=5)] == [eid]
    assert [e.id for e, _ in again.search("sum of integers", k=5, kind="template")] == [tid]
    again.close()
    with pytest.raises(ConfigError, match="closed"):
        again.count()


def test_add_many_is_one_transaction(tmp_path):
    with _store(tmp_path) as store:
        ids = store.add_many([Experience(p, "s") for p in DISTRACTORS[:3]])
        assert len(set(ids)) == 3 and store.count() == 3
        # one bad item: nothing of the batch is written
        with pytest.raises(ConfigError):
            store.add_many([Experience("fine", "s"), Experience("bad score", "s", score=2.0)])
        dup = store.get(ids[0])
        with pytest.raises(ConfigError, match="already stored"):
            store.add_many([Experience("another", "s"), dup])
        assert store.count() == 3
        assert store.add_many([]) == []


def test_a_second_handle_sees_new_rows_on_its_next_search(tmp_path):
    a, b = _store(tmp_path), _store(tmp_path)
    try:
        a.add(Experience(DISTRACTORS[0], "72"))
        assert [e.problem for e, _ in b.search("clips sold in April")] == [DISTRACTORS[0]]
        a.add(Experience("How many clips were sold in April and May altogether?", "72", verified=True, score=1.0))
        found = b.search("clips sold in April and May", k=5)
        assert len(found) == 2 and b.count() == 2
        assert [e.problem for e, _ in b.search("clips", verified_only=True)] == [
            "How many clips were sold in April and May altogether?"]
    finally:
        a.close()
        b.close()


# -- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exp, param", [
    (Experience("", "x"), "problem"),
    (Experience("   \n\t", "x"), "problem"),
    (Experience("p", "x", score=1.5), "score"),
    (Experience("p", "x", score=-0.1), "score"),
    (Experience("p", "x", score=float("nan")), "score"),
    (Experience("p", "x", kind="memo"), "kind"),
    (Experience("p", "x", meta={"f": object()}), "meta"),
    (Experience("p", None), "solution"),  # type: ignore[arg-type]
])
def test_bad_experiences_are_config_errors(tmp_path, exp, param):
    with _store(tmp_path) as store:
        with pytest.raises(ConfigError) as err:
            store.add(exp)
        assert err.value.param == param and err.value.hint
        assert store.count() == 0


def test_bad_arguments_are_config_errors(tmp_path):
    with _store(tmp_path) as store:
        store.add(Experience("p", "x"))
        for kwargs, param in [({"kind": "memo"}, "kind"), ({"k": 0}, "k"), ({"mode": "sparse"}, "mode")]:
            with pytest.raises(ConfigError) as err:
                store.search("p", **kwargs)
            assert err.value.param == param
        with pytest.raises(ConfigError, match="unknown experience kind"):
            store.count("memo")
    with pytest.raises(ConfigError, match="max_items"):
        _store(tmp_path, max_items=0)


def test_bad_paths_are_config_errors(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="is a directory") as err:
        ExperienceStore(tmp_path / "folder", "static")
    assert "memory.db" in err.value.hint
    with pytest.raises(ConfigError, match="does not exist"):
        ExperienceStore(tmp_path / "missing.db", "static", create=False)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        ExperienceStore(tmp_path / "afile" / "m.db", "static")
    with pytest.raises(ConfigError, match="not writable"):  # not writable even by root
        ExperienceStore("/proc/sys/junto-memory.db", "static")
    (tmp_path / "notes.db").write_bytes(b"these are not the pages of a SQLite database\n" * 100)
    with pytest.raises(ConfigError, match="cannot open experience store") as err:
        ExperienceStore(tmp_path / "notes.db", "static")
    assert "not a junto experience store" in err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only folder")
def test_read_only_folder_is_a_config_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            ExperienceStore(ro / "m.db", "static")
    finally:
        ro.chmod(0o700)


def test_a_store_opened_with_another_embedder_is_a_config_error(tmp_path):
    with _store(tmp_path) as store:
        store.add(Experience("p", "x"))
    with pytest.raises(ConfigError, match="built with embedder") as err:
        ExperienceStore(tmp_path / "m.db", "minilm")
    assert err.value.param == "embedder" and "without an embedder" in err.value.hint
    with ExperienceStore(tmp_path / "m.db") as same:  # the stored one
        assert same.count() == 1


# -- eviction -------------------------------------------------------------------------------------------

def test_eviction_drops_unverified_then_low_score_then_oldest(tmp_path):
    with _store(tmp_path, max_items=4) as store:
        old_verified = store.add(Experience("verified, low score, oldest", "s", score=0.2, verified=True))
        new_verified = store.add(Experience("verified, low score, newer", "s", score=0.2, verified=True))
        unverified_high = store.add(Experience("unverified, high score", "s", score=0.9))
        unverified_low = store.add(Experience("unverified, low score", "s", score=0.1))
        template = store.add(Experience("a template", "t", kind="template"))  # its own kind, its own bound
        assert store.count("experience") == 4
        assert len(store.search("score", k=10)) == 4  # indexes built now; the evictions below must reach them
        top = store.add(Experience("verified, top score", "s", score=1.0, verified=True))
        assert store.get(unverified_low) is None and store.count("experience") == 4
        store.add(Experience("verified, mid score", "s", score=0.5, verified=True))
        assert store.get(unverified_high) is None  # every unverified one goes before any verified one
        store.add(Experience("verified, mid score again", "s", score=0.5, verified=True))
        assert store.get(old_verified) is None and store.get(new_verified) is not None  # oldest of equals first
        # an unverified newcomer to a store full of verified ones is itself dropped at once
        loser = store.add(Experience("unverified newcomer", "s", score=1.0))
        assert store.get(loser) is None
        assert store.get(top) is not None and store.get(template) is not None
        assert store.count("experience") == 4 and store.count("template") == 1
        # the in-memory indexes follow the deletions
        assert {e.problem for e, _ in store.search("score", k=10)} == {
            "verified, low score, newer", "verified, top score", "verified, mid score", "verified, mid score again"}


# -- retrieval ------------------------------------------------------------------------------------------

def test_filters_task_verified_and_exclude_problem(tmp_path):
    with _store(tmp_path) as store:
        store.add_many([Experience(p, "s", task="gsm8k" if i % 2 else "humaneval", verified=i < 4, score=0.5)
                        for i, p in enumerate(DISTRACTORS)])
        problem = "Check whether a given integer is a prime number."
        hit = store.search("is this integer prime?", k=1)[0][0]
        assert hit.problem == problem
        spaced = "  Check whether a given\n integer   is a prime number. "
        assert normalize_problem(spaced) == problem
        rest = store.search("is this integer prime?", k=20, exclude_problem=spaced)
        assert len(rest) == len(DISTRACTORS) - 1 and problem not in [e.problem for e, _ in rest]
        gsm = store.search("numbers", k=20, task="gsm8k")
        assert gsm and {e.task for e, _ in gsm} == {"gsm8k"} and len(gsm) == 4
        ver = store.search("numbers", k=20, verified_only=True)
        assert {e.problem for e, _ in ver} == set(DISTRACTORS[:4])
        assert store.search("numbers", task="no-such-task") == []


def test_rrf_fuse_by_hand():
    # list 1: a b c ; list 2: c a     → a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62
    fused = rrf_fuse([[10, 11, 12], [12, 10]])
    assert [d for d, _ in fused] == [10, 12, 11]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62) and fused[2][1] == pytest.approx(1 / 62)
    # equal fused scores: the better single rank wins, then the earlier list
    assert [d for d, _ in rrf_fuse([[1, 2], [2, 1]])] == [1, 2]
    assert [d for d, _ in rrf_fuse([[5], [6]])] == [5, 6]
    assert rrf_fuse([]) == []


def test_hybrid_scores_are_the_rrf_of_the_dense_and_lexical_rankings(tmp_path):
    with _store(tmp_path) as store:
        store.add_many([Experience(p, "s") for p in DISTRACTORS])
        query = "how many eggs and clips were sold per day"
        n = len(DISTRACTORS)
        dense = [e.id for e, _ in store.search(query, k=n, mode="dense")]
        lexical = [e.id for e, _ in store.search(query, k=n, mode="lexical")]
        assert len(dense) == n and 0 < len(lexical) < n  # BM25 lists only rows sharing a word
        expected: dict[str, float] = {}
        for ranking in (dense, lexical):
            for rank, eid in enumerate(ranking, 1):
                expected[eid] = expected.get(eid, 0.0) + 1 / (RRF_K + rank)
        hybrid = store.search(query, k=n)
        assert [s for _, s in hybrid] == sorted((s for _, s in hybrid), reverse=True)
        assert {e.id: s for e, s in hybrid} == pytest.approx(expected)
        assert hybrid[0][0].id == max(expected, key=expected.get)


def test_hybrid_finds_a_lexical_only_and_a_paraphrase_only_match(tmp_path):
    lexical_target = "Configure the zorblatt_v2 flag in the settings file of the build server."
    paraphrase_target = "Write a function that reverses a string."
    with _store(tmp_path, embedder="minilm") as store:
        assert store.blocking is True
        store.add_many([Experience(p, "s") for p in [*DISTRACTORS, lexical_target, paraphrase_target,
                                                      "Sort a list of words alphabetically.",
                                                      "Capitalize the first letter of each word in a title.",
                                                      "Reverse the order of the words in a sentence.",
                                                      "Check whether a string is a palindrome.",
                                                      "Rotate the characters of a string by k places."]])
        # shares no word with the paraphrase target, and only the rare identifier with the other
        query = "flip a text backwards, char by char (zorblatt_v2)"
        lexical = [e.problem for e, _ in store.search(query, k=20, mode="lexical")]
        assert lexical == [lexical_target]  # BM25 alone never sees the paraphrase
        dense = [e.problem for e, _ in store.search(query, k=3, mode="dense")]
        assert dense[0] == paraphrase_target and lexical_target not in dense  # the dense top misses the identifier
        hybrid = [e.problem for e, _ in store.search(query, k=2)]
        # first in both lists beats first in one: the identifier match (dense rank > 3, lexical 1), then the paraphrase
        assert hybrid == [lexical_target, paraphrase_target]
        # and a purely lexical query still finds its match through the hybrid
        assert store.search("zorblatt_v2", k=1)[0][0].problem == lexical_target


# -- several processes ------------------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    from junto.memory.experience import Experience, ExperienceStore
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with ExperienceStore(path, "static") as store:
        for i in range(n):
            eid = store.add(Experience(f"problem {i} of writer {tag}: token{tag}x{i}", f"solution {tag} {i}",
                                       score=0.5, task="multi"))
            print(eid, i, flush=True)
""")

_READER = textwrap.dedent("""
    import sys, time
    from junto.memory.experience import ExperienceStore
    path, total = sys.argv[1], int(sys.argv[2])
    store = ExperienceStore(path, "static")
    seen, last, deadline = [], -1, time.time() + 120
    while time.time() < deadline:
        found = store.search("problem of writer", k=total, mode="lexical")
        n = len(found)
        assert n >= last, (n, last)   # rows only ever appear
        assert n == len({e.id for e, _ in found})
        seen.append(n)
        last = n
        if n == total:
            break
        time.sleep(0.01)
    print(last, len(set(seen)))
""")


def _python(script: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def test_two_writer_processes_and_a_reader_share_one_file(tmp_path):
    path = str(tmp_path / "shared.db")
    ExperienceStore(path, "static").close()  # created once, so every process agrees on the embedder
    n = 25
    reader = _python(_READER, path, str(2 * n))
    writers = [_python(_WRITER, path, tag, str(n)) for tag in ("A", "B")]
    outs = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [e for _, e in outs]
    r_out, r_err = reader.communicate(timeout=120)
    assert reader.returncode == 0, r_err
    last, distinct = map(int, r_out.split())
    assert last == 2 * n and distinct >= 2  # the reader saw the file grow, and then all of it
    with ExperienceStore(path) as store:
        assert store.count() == 2 * n
        for tag, (out, _) in zip("AB", outs):
            lines = [line.split() for line in out.splitlines()]
            assert len(lines) == n
            for eid, i in lines:
                assert store.get(eid).solution == f"solution {tag} {i}"
            assert store.search(f"token{tag}x7", k=1, mode="lexical")[0][0].problem.endswith(f"token{tag}x7")


_CRASH_WRITER = textwrap.dedent("""
    import sys
    from junto.memory.experience import Experience, ExperienceStore
    path, start = sys.argv[1], int(sys.argv[2])
    store = ExperienceStore(path, "static")
    i = start
    while True:
        body = f"solution {i} " + "x" * 200_000   # large rows: a kill lands mid-write often
        eid = store.add(Experience(f"crash problem {i}: marker{i}", body, score=0.5, meta={"i": i}))
        print(eid, i, flush=True)
        i += 1
""")


def test_a_writer_killed_with_sigkill_loses_nothing_it_reported(tmp_path):
    path = str(tmp_path / "crash.db")
    ExperienceStore(path, "static").close()
    reported: dict[str, int] = {}
    start = 0
    for round_ in range(3):
        writer = _python(_CRASH_WRITER, path, str(start), start_new_session=True)
        lines = []
        while len(lines) < 5 + 3 * round_:  # let it commit a few, then kill it wherever it is
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
            lines.append(line)
        time.sleep(0.003 * round_)
        os.kill(writer.pid, signal.SIGKILL)
        out, _ = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        printed = [line.split() for line in [*lines, *out.splitlines()] if line.strip()]
        for eid, i in printed:  # each printed after its add() returned
            reported[eid] = int(i)
        with ExperienceStore(path) as store:
            for eid, i in printed:
                exp = store.get(eid)
                assert exp is not None, f"experience {i} was reported committed but is gone"
                assert exp.meta["i"] == int(i)
            committed = [e.meta["i"] for e in store.all() if e.meta["i"] >= start]
        # at most one row more than it printed: committed, then killed before the print
        assert len(committed) - len(printed) in (0, 1)
        start = max(committed) + 1  # the next writer continues after the last committed row
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with ExperienceStore(path) as store:
        rows = store.all()
        assert [e.meta["i"] for e in rows] == list(range(len(rows)))  # no gap, no partial row
        for e in rows:
            i = e.meta["i"]
            assert e.problem == f"crash problem {i}: marker{i}" and e.solution == f"solution {i} " + "x" * 200_000
        for eid, i in reported.items():
            assert store.get(eid).meta["i"] == i
        for i in (0, len(rows) // 2, len(rows) - 1):
            assert store.search(f"marker{i}", k=1)[0][0].meta["i"] == i
            assert store.search(f"crash problem {i}: marker{i}", k=1, mode="dense")[0][0].meta["i"] == i


def test_ids_in_json_meta_round_trip(tmp_path):
    with _store(tmp_path) as store:
        meta = {"task_id": "HumanEval/7", "nested": {"a": [1, 2.5, None, True]}, "text": "ü → ∑"}
        eid = store.add(Experience("filter strings by substring", "s", meta=meta))
        assert store.get(eid).meta == meta
        assert json.loads(json.dumps(store.get(eid).meta)) == meta


# -- linear time over model text ------------------------------------------------------------------------

MAX_CHARS = 20_000
_SETTINGS = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.large_base_example, HealthCheck.function_scoped_fixture])
_long_text = st.builds(lambda parts, n: ("".join(parts) * n)[:MAX_CHARS],
                       st.lists(st.sampled_from(["a", "_", " ", "ab ", "x1", "é", "\n", "--", "the ", "def f(x):"])
                                | st.text(max_size=8), min_size=1, max_size=12),
                       st.integers(1, MAX_CHARS))


@pytest.fixture(scope="module")
def linear_store(tmp_path_factory):
    store = ExperienceStore(tmp_path_factory.mktemp("linear") / "m.db", "static")
    store.add_many([Experience(p, "s") for p in DISTRACTORS])
    yield store
    store.close()


@_SETTINGS
@given(_long_text)
def test_adversarial_20k_char_problems_and_queries_are_handled_quickly(linear_store, text):
    t0 = time.perf_counter()
    if text.strip():
        eid = linear_store.add(Experience(text, "s", kind="template"))
        assert linear_store.get(eid).problem == text
    linear_store.search(text, k=3, kind="template", exclude_problem=text)
    linear_store.search(text, k=3, mode="lexical")
    assert time.perf_counter() - t0 < 2.0


def test_rows_without_a_single_word_are_found_by_the_embedding_only(tmp_path):
    with _store(tmp_path) as store:
        store.add_many([Experience("a", "s"), Experience("?!", "s")])  # no BM25 token in the whole kind
        assert store.search("a ?!", mode="lexical") == []
        assert len(store.search("a ?!", k=5)) == 2
        store.add(Experience("prime numbers below ten", "2 3 5 7"))
        assert store.search("prime", k=1)[0][0].problem == "prime numbers below ten"
