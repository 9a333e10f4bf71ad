#!/usr/bin/env python3
"""Mutation testing for fedpp: applies each curated mutant of tests/mutants/*.txt to a scratch copy
of the tree, rebuilds only the test files the mutant names and runs them. A mutant is killed when
one of them fails (or crashes, or times out); a survivor is a bug the tests would miss.

Run it through scripts/mutants.sh; `scripts/mutants.sh --help` lists the options and
docs/testing.md describes the list format and how to add a mutant.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import difflib
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"file", "find", "replace", "tests", "why", "occurrence"}
REQUIRED = ("file", "find", "replace", "tests", "why")
ID_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
TEST_RE = re.compile(r"^[a-z0-9_]+/[a-z0-9_]+$")


class ListError(Exception):
    """A malformed or stale mutant list."""


@dataclasses.dataclass
class Mutant:
    """One mutation: replace one line of one file; `tests` must catch it."""

    id: str
    file: str
    find: str
    replace: str
    tests: list[str]
    why: str
    occurrence: int | None
    source: str  # list file and line, for messages
    line: int = 0  # 1-based line of `file` that `find` names (filled in by locate)
    original: str = ""  # that line as it is, with its indentation
    mutated: str = ""  # the replacement with the same indentation

    def target(self, test: str) -> str:
        folder, name = test.split("/")
        return f"test_{folder}__{name}"


def parse_list(path: Path) -> list[Mutant]:
    """Reads one list file: `[id]` headers followed by `key: value` lines."""
    mutants: list[Mutant] = []
    cur: dict[str, str] | None = None
    cur_id = ""
    cur_line = 0
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path

    def flush() -> None:
        if cur is None:
            return
        where = f"{rel}:{cur_line}"
        missing = [k for k in REQUIRED if k not in cur]
        if missing:
            raise ListError(f"{where}: [{cur_id}] lacks {', '.join(missing)}")
        occ = None
        if "occurrence" in cur:
            if not cur["occurrence"].isdigit() or int(cur["occurrence"]) < 1:
                raise ListError(f"{where}: [{cur_id}] occurrence must be a positive integer, got {cur['occurrence']!r}")
            occ = int(cur["occurrence"])
        tests = cur["tests"].split()
        if not tests:
            raise ListError(f"{where}: [{cur_id}] names no tests")
        mutants.append(Mutant(cur_id, cur["file"], cur["find"], cur["replace"], tests, cur["why"], occ, where))

    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            flush()
            cur, cur_id, cur_line = {}, line[1:-1].strip(), n
            if not ID_RE.match(cur_id):
                raise ListError(f"{rel}:{n}: bad id {cur_id!r} (want area.component.what, lower case)")
            continue
        if cur is None:
            raise ListError(f"{rel}:{n}: text before the first [id]: {line!r}")
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ListError(f"{rel}:{n}: expected one of {sorted(KEYS)} followed by ':', got {line!r}")
        if key in cur:
            raise ListError(f"{rel}:{n}: [{cur_id}] repeats {key}")
        cur[key] = value.strip()
    flush()
    return mutants


def locate(m: Mutant, tree: Path) -> None:
    """Finds the line `m.find` names in `tree`/m.file and prepares the mutated line."""
    path = tree / m.file
    if not path.is_file():
        raise ListError(f"{m.source}: [{m.id}] file {m.file} does not exist")
    lines = path.read_text().splitlines(keepends=True)
    hits = [i for i, l in enumerate(lines) if l.strip() == m.find]
    if not hits:
        raise ListError(f"{m.source}: [{m.id}] no line of {m.file} reads {m.find!r} (moved or changed? update the list)")
    if m.occurrence is None and len(hits) > 1:
        raise ListError(f"{m.source}: [{m.id}] {len(hits)} lines of {m.file} read {m.find!r} "
                        f"(lines {', '.join(str(h + 1) for h in hits)}): add 'occurrence: N'")
    if m.occurrence is not None and m.occurrence > len(hits):
        raise ListError(f"{m.source}: [{m.id}] occurrence {m.occurrence} but only {len(hits)} lines read {m.find!r}")
    i = hits[(m.occurrence or 1) - 1]
    orig = lines[i]
    indent = orig[: len(orig) - len(orig.lstrip())]
    end = "\n" if orig.endswith("\n") else ""
    m.line, m.original, m.mutated = i + 1, orig, indent + m.replace + end
    if m.replace.strip() == m.find:
        raise ListError(f"{m.source}: [{m.id}] replace is the same line as find")
    for t in m.tests:
        if not TEST_RE.match(t) or not (tree / "tests" / "unit" / f"{t.split('/')[0]}" / f"{t.split('/')[1]}_test.cpp").is_file():
            raise ListError(f"{m.source}: [{m.id}] no test file tests/unit/{t}_test.cpp")


def load(files: list[Path], only: str | None) -> list[Mutant]:
    """Parses the list files, checks ids are unique and every mutant applies to the current tree."""
    mutants: list[Mutant] = []
    for f in files:
        mutants.extend(parse_list(f))
    seen: dict[str, str] = {}
    for m in mutants:
        if m.id in seen:
            raise ListError(f"{m.source}: id [{m.id}] already used at {seen[m.id]}")
        seen[m.id] = m.source
    for m in mutants:
        locate(m, ROOT)
    if only:
        rx = re.compile(only)
        mutants = [m for m in mutants if rx.search(m.id)]
    return mutants


def diff_of(m: Mutant) -> str:
    """The mutation as a unified diff with one line of context."""
    return "".join(difflib.unified_diff([m.original], [m.mutated], f"a/{m.file}", f"b/{m.file}", lineterm="\n",
                                        n=0)).replace("@@ -1 +1 @@", f"@@ -{m.line} +{m.line} @@")


def tree_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the checkout."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p and (ROOT / p).is_file()})


def sync_tree(dest: Path) -> int:
    """Mirrors the checkout into dest, writing only files whose bytes differ (so make's timestamps
    rebuild only what changed) and deleting files that are gone. Returns the number written."""
    files = tree_files()
    keep = set(files)
    written = 0
    for rel in files:
        src, dst = ROOT / rel, dest / rel
        data = src.read_bytes()
        if dst.is_file() and dst.read_bytes() == data:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        shutil.copymode(src, dst)
        written += 1
    if dest.is_dir():
        for p in sorted(dest.rglob("*"), reverse=True):
            rel = p.relative_to(dest).as_posix()
            if p.is_file() and rel not in keep:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return written


def run(cmd: list[str], log: Path, timeout: float | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> tuple[int, bool, float]:
    """Runs cmd in its own process group with output to log; returns (exit code, timed out, seconds)."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
            return rc, False, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return -9, True, time.monotonic() - t0
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file."""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def configure(src: Path, build: Path, opt: str, log: Path) -> None:
    """Configures the scratch build (per-file test executables, no examples or benchmarks)."""
    flags = f"{opt} -DNDEBUG -g0"
    cmd = ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_CXX_FLAGS_RELEASE={flags}", "-DFEDPP_BUILD_TESTS=ON", "-DFEDPP_TEST_PER_FILE=ON",
           "-DFEDPP_BUILD_EXAMPLES=OFF", "-DFEDPP_BUILD_BENCHMARKS=OFF", "-DFEDPP_CHECK_HEADERS=OFF",
           "-DFEDPP_INSTALL=OFF", "-DFEDPP_BUILD_FUZZ=OFF", "-DFEDPP_WARNINGS_AS_ERRORS=OFF", "-DFEDPP_SANITIZE="]
    rc, _, _ = run(cmd, log)
    if rc != 0:
        sys.exit(f"mutants: configuring the scratch build failed (log {log}):\n{tail(log)}")


def build(build_dir: Path, targets: list[str], jobs: int, log: Path) -> tuple[int, float]:
    """Builds the named targets; returns (exit code, seconds)."""
    rc, _, dt = run(["cmake", "--build", str(build_dir), "--parallel", str(jobs), "--target", *targets], log)
    return rc, dt


def run_test(build_dir: Path, target: str, timeout: float, log: Path) -> tuple[int, bool, float]:
    """Runs one test executable, stopping at its first failure."""
    exe = build_dir / "tests" / target
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return run([str(exe), "--abort", "-w", "NoTests"], log, timeout=timeout, cwd=build_dir, env=env)


def cpu_model() -> str:
    """The CPU's model name, for the JSON record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_rev() -> str:
    """HEAD's short hash, with -dirty when the tree has changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/mutants.sh",
        description="Mutation testing: apply each curated mutant to a scratch copy, rebuild the test files it "
                    "names, run them; report the kill rate and every survivor with its diff. Exit status 0 "
                    "when every selected mutant is killed.")
    ap.add_argument("--file", action="append", type=Path, default=[],
                    help="a list file (default: every tests/mutants/*.txt); may be repeated")
    ap.add_argument("--only", metavar="REGEX", help="run only the mutants whose id matches REGEX")
    ap.add_argument("--check", action="store_true",
                    help="only check the lists (syntax, unique ids, every find line present exactly once, test "
                         "files exist) and exit; builds nothing")
    ap.add_argument("--list", action="store_true", help="print the selected mutants and exit")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build-mutants",
                    help="scratch folder for the tree copy and its build (default: build-mutants/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="build parallelism (default: nproc)")
    ap.add_argument("--workers", type=int, default=1,
                    help="mutants built and run at once, each in its own scratch copy (default 1; on N cores "
                         "N workers with --jobs N finish about N times sooner when mutants name one test file)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds one test executable may run before the mutant counts as killed by timeout "
                         "(default 300)")
    ap.add_argument("--opt", default="-O1", help="optimisation flag of the scratch build (default -O1)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running the unmutated tests first (faster; a failing baseline then makes every "
                         "mutant look killed)")
    ap.add_argument("--json", type=Path, help="write the results as JSON here (default: WORKDIR/mutants.json)")
    a = ap.parse_args()

    files = [f if f.is_absolute() else (Path.cwd() / f).resolve() for f in a.file] or \
        sorted((ROOT / "tests" / "mutants").glob("*.txt"))
    if not files:
        print("mutants: no list files", file=sys.stderr)
        return 2
    try:
        mutants = load(files, a.only)
    except (ListError, OSError) as e:
        print(f"mutants: {e}", file=sys.stderr)
        return 2
    if a.check or a.list:
        if a.list:
            for m in mutants:
                print(f"{m.id}\n  {m.file}:{m.line}  {m.find}\n  -> {m.replace}\n  tests: {' '.join(m.tests)}\n"
                      f"  why: {m.why}")
        by_area: dict[str, int] = {}
        for m in mutants:
            by_area[m.id.split(".")[0]] = by_area.get(m.id.split(".")[0], 0) + 1
        print(f"mutants: {len(mutants)} mutants in {len(files)} list files, all apply to the current tree ("
              + ", ".join(f"{k} {v}" for k, v in sorted(by_area.items())) + ")")
        return 0
    if not mutants:
        print("mutants: no mutant matches", file=sys.stderr)
        return 2

    work = a.workdir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(a.workers, len(mutants)))
    t_start = time.monotonic()
    dirs: list[tuple[Path, Path]] = []  # (scratch tree, its build) per worker
    for w in range(workers):
        # Worker 0 uses WORKDIR/src and WORKDIR/build; further workers their own copies.
        base = work if w == 0 else work / f"worker{w}"
        src, bdir = base / "src", base / "build"
        n = sync_tree(src)
        print(f"mutants: scratch tree {src} ({n} files updated)", flush=True)
        configure(src, bdir, a.opt, logs / f"configure-{w}.log")
        dirs.append((src, bdir))
    print(f"mutants: {len(mutants)} mutants, {workers} worker(s)", flush=True)

    targets = sorted({m.target(t) for m in mutants for t in m.tests})
    baseline_s = 0.0
    if not a.no_baseline:
        _, bdir0 = dirs[0]
        print(f"mutants: baseline: building and running {len(targets)} unmutated test files", flush=True)
        rc, dt = build(bdir0, targets, a.jobs, logs / "baseline-build.log")
        if rc != 0:
            print(f"mutants: the unmutated tests do not build (log {logs / 'baseline-build.log'}):\n"
                  f"{tail(logs / 'baseline-build.log')}", file=sys.stderr)
            return 2
        for t in targets:
            rc, to, dt = run_test(bdir0, t, a.timeout, logs / f"baseline-{t}.log")
            if rc != 0:
                why = "timed out" if to else f"exit {rc}"
                print(f"mutants: the unmutated {t} fails ({why}); fix it first (log {logs / f'baseline-{t}.log'}):\n"
                      f"{tail(logs / f'baseline-{t}.log')}", file=sys.stderr)
                return 2
        baseline_s = time.monotonic() - t_start
        print(f"mutants: baseline passed ({baseline_s:.0f} s)", flush=True)

    slots: "queue.Queue[tuple[Path, Path]]" = queue.Queue()  # the worker folders not in use
    for d in dirs:
        slots.put(d)
    jobs_each = max(1, a.jobs // workers)
    lock = threading.Lock()
    done = [0]
    width = len(str(len(mutants)))

    def one(m: Mutant) -> dict:
        src, bdir = slots.get()
        try:
            path = src / m.file
            text = path.read_text()
            lines = text.splitlines(keepends=True)
            assert lines[m.line - 1] == m.original, "scratch tree differs from the checkout"
            lines[m.line - 1] = m.mutated
            t0 = time.monotonic()
            status, by, detail = "survived", None, ""
            try:
                path.write_text("".join(lines))
                blog = logs / f"{m.id}-build.log"
                rc, _ = build(bdir, [m.target(t) for t in m.tests], jobs_each, blog)
                if rc != 0:
                    status, detail = "error", f"the mutant does not build (log {blog}):\n{tail(blog, 15)}"
                else:
                    for t in m.tests:
                        tlog = logs / f"{m.id}-{m.target(t)}.log"
                        rc, to, _ = run_test(bdir, m.target(t), a.timeout, tlog)
                        if rc != 0:
                            status, by = "killed", t
                            detail = "timeout" if to else (f"signal {-rc}" if rc < 0 else f"exit {rc}")
                            break
            finally:
                path.write_text(text)  # restore (a fresh mtime: make rebuilds what saw the mutant)
        finally:
            slots.put((src, bdir))
        dt = time.monotonic() - t0
        with lock:
            done[0] += 1
            tag = f"[{done[0]:>{width}}/{len(mutants)}]"
            if status == "killed":
                print(f"{tag} killed    {m.id}  (by {by}, {detail}, {dt:.0f} s)", flush=True)
            elif status == "survived":
                print(f"{tag} SURVIVED  {m.id}  ({dt:.0f} s)\n  why: {m.why}\n  tests: {' '.join(m.tests)}\n"
                      + "".join("  " + l for l in diff_of(m).splitlines(keepends=True)), flush=True)
            else:
                print(f"{tag} ERROR     {m.id}  {detail}", flush=True)
        return {"id": m.id, "status": status, "killed_by": by, "detail": detail.split("\n")[0],
                "file": m.file, "line": m.line, "find": m.find, "replace": m.replace, "tests": m.tests,
                "why": m.why, "seconds": round(dt, 1)}

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, mutants))
    killed = sum(r["status"] == "killed" for r in results)
    survived = sum(r["status"] == "survived" for r in results)
    errors = sum(r["status"] == "error" for r in results)

    total_s = time.monotonic() - t_start
    valid = killed + survived
    rate = 100.0 * killed / valid if valid else 0.0
    print(f"\nmutants: {killed}/{valid} killed ({rate:.1f} %), {survived} survived, {errors} errors, "
          f"{total_s / 60:.1f} min")
    for r in results:
        if r["status"] != "killed":
            print(f"  {r['status']}: {r['id']} ({r['file']}:{r['line']})")
    out = a.json or work / "mutants.json"
    out.write_text(json.dumps({
        "revision": git_rev(), "cpu": cpu_model(), "jobs": a.jobs, "workers": workers, "opt": a.opt, "date": time.strftime("%Y-%m-%d"),
        "lists": [str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files],
        "only": a.only, "mutants": len(mutants), "killed": killed, "survived": survived, "errors": errors,
        "kill_rate_percent": round(rate, 2), "seconds": round(total_s, 1), "baseline_seconds": round(baseline_s, 1),
        "results": results}, indent=1) + "\n")
    print(f"mutants: results in {out}")
    return 0 if survived == 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
