#!/usr/bin/env python3
"""FTS5 table options against the cost of indexing a task's text (session 31, docs/benchmarks.md "Session 31 (perf)").

Loads the e_sqlite3 that JobLog ships (SQLitePCLRaw's bundle) with ctypes, fills a plain table with N JSON texts shaped
like the bench's ChargeCard rendering, then times (process CPU) moving them into a contentless trigram FTS5 table in
batches of B rows per transaction, as SqliteSearchIndexer's bulk step does, for each table option set in turn, R times.
First checks which option sets SQLite accepts (columnsize=0 with contentless_delete=1 is refused).

Usage: python3 bench/fts5-options.py path/to/runtimes/linux-x64/native/libe_sqlite3.so [N] [B] [R]
"""
import ctypes, os, random, statistics, sys, tempfile, time

lib = ctypes.CDLL(sys.argv[1])
lib.sqlite3_libversion.restype = ctypes.c_char_p
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
B = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
R = int(sys.argv[4]) if len(sys.argv) > 4 else 6
OPTIONS = ["contentless_delete=1,", "columnsize=0,", ""]


def open_db(path):
    db = ctypes.c_void_p()
    lib.sqlite3_open(path.encode(), ctypes.byref(db))
    err = ctypes.c_char_p()

    def ex(sql):
        if lib.sqlite3_exec(db, sql.encode(), None, None, ctypes.byref(err)):
            raise RuntimeError(err.value.decode())
    return db, ex


def accepted(opts):
    db, ex = open_db(":memory:")
    try:
        ex(f"CREATE VIRTUAL TABLE x USING fts5(a, content='', {opts} tokenize='trigram')")
        return "accepted"
    except RuntimeError as e:
        return str(e)
    finally:
        lib.sqlite3_close(db)


def run(opts, directory):
    path = os.path.join(directory, "fts.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db, ex = open_db(path)
    ex("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    ex("CREATE TABLE t(id INTEGER PRIMARY KEY, Input TEXT, Kw TEXT)")
    ex(f"CREATE VIRTUAL TABLE x USING fts5(Input, Kw, content='', {opts} tokenize='trigram')")
    random.seed(1)
    ex("BEGIN")
    for i in range(N):
        text = '{"customerId":%d,"amount":%d.%02d,"currency":"EUR","reference":"ref-%08x"}' % (
            random.randint(1, 100000), random.randint(1, 999), random.randint(0, 99), random.getrandbits(32))
        ex(f"INSERT INTO t VALUES({i + 1},'{text}',NULL)")
    ex("COMMIT")
    started = time.process_time()
    for b in range(0, N, B):
        ex(f"BEGIN; INSERT INTO x(rowid,Input,Kw) SELECT id,Input,Kw FROM t WHERE id>{b} AND id<={b + B} ORDER BY id; COMMIT")
    spent = time.process_time() - started
    lib.sqlite3_close(db)
    return spent / N * 1e6


print("SQLite", lib.sqlite3_libversion().decode())
print("contentless_delete=1 with columnsize=0:", accepted("contentless_delete=1, columnsize=0,"))
results = {o: [] for o in OPTIONS}
with tempfile.TemporaryDirectory() as directory:
    for r in range(R):
        for o in OPTIONS:
            results[o].append(run(o, directory))
            print(r, repr(o), "%.2f us/row" % results[o][-1], flush=True)
for o in OPTIONS:
    print(f"{o!r:28} median {statistics.median(results[o]):.2f} us/row (range {min(results[o]):.2f}-{max(results[o]):.2f})")
