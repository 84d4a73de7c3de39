"""Sandboxed code verifier: run untrusted candidate programs against tests, with a verdict they cannot forge.

    verify(program, tests, *, timeout=10.0, memory_mb=1024) -> Verdict
        tests: ["assert add(1, 2) == 3", ...]  or  [{"stdin": "1 2\\n", "stdout": "3\\n"}, ...]
    run_python(code, stdin=None, *, timeout=10.0, memory_mb=1024) -> RunResult   (tool use)
    CodeVerifier(timeout=..)(completion, tests=[...]) -> Verdict                  (composition / TRL)

How a check runs. A pool of warm template processes ("zygotes", `pool.py` / `zygote.py`), each fenced
in once at start, forks one fresh child per run (`jobchild.py`), in a fresh network and IPC namespace
and tmpfs, with random pid numbers (`between.py`). For assert tests the trusted parent first splits
every assert (`testsplit.py`): `assert add(1, 2) == 3` sends only `add(1, 2)` to the sandbox and
keeps `== 3` here; wrappers and expected sides (`math.isinf(f(x))`, `heapq.nsmallest(2, [...])`,
`f(x).isupper()`) run on a trusted worker that never runs candidate code (`trusted.py`), on plain
values; the sandbox returns each value as plain JSON-typed data (`values.py`), and the parent
compares with strict types (`asserts.py`). Stdin/stdout tests compare the whole
output (trailing whitespace normalised) in the parent.

What it protects against (each has an adversarial test in tests/test_code_adversarial.py):
- forged verdicts: expected values never enter the sandbox; only plain data comes back (an object
  with an always-true `__eq__`, or an int subclass, cannot be sent); comparison happens in the parent
  with type-strict equality; a candidate that writes fake lines on the result channel, walks stack
  frames, patches builtins/json, or prints "passed" markers gains nothing: the channel carries values,
  never verdicts, so anything it can write there it could have returned from its function;
- early exits (sys.exit, os._exit, SystemExit, quit, atexit, os.kill of itself): a test with no
  value is a failed test; a stdin/stdout run must exit 0;
- reading or tampering with the tests: they are not in the sandbox's memory, its filesystem or its
  reach (different uid, PID namespace, private root without the host's files);
- the host: no network (own network namespace, no interfaces up), own PID namespace (cannot see or
  signal the verifier, and killing "everything" kills only itself), an unprivileged uid per worker with
  no_new_privs, rlimits (CPU seconds, address space, processes, open files, file size, no core
  dumps), a private read-only root (system dirs + Python only, a fresh /proc and /dev, a root-owned
  /tmp) and a fresh work dir removed afterwards, stdin closed (EOF), stdout/stderr capped (the run is
  killed past the cap), and on timeout or exit every process left in the namespace is SIGKILLed
  (double-forked daemons included; SIGALRM/SIGTERM handlers do not help);
- hostile replies: the parent never hashes an untrusted value (sets/dicts compared as canonical
  sorted forms, `values.py`) and refuses a reply over its element/depth/digit caps in milliseconds;
- other jobs: each job gets its own network and IPC namespaces, tmpfs work dir and random pid
  numbers; a job that leaves anything behind (fds kept in flight, memory or tasks still charged) gets
  its worker replaced before the next job; its output goes into memfds the parent made and passed by
  fd, so the template process that forks the next job never holds it; expected values and wrappers
  are computed on a separate worker that never runs candidate code.

What it does NOT protect against:
- kernel exploits: the boundary is namespaces + uid + rlimits + a seccomp DENY list (keyrings,
  unshare/setns, clone with CLONE_NEW*), not a syscall allow list;
- hosts without cgroups (named in every Verdict): there CPU is bounded per process (RLIMIT_CPU) and by
  the wall-clock deadline, and memory per process (RLIMIT_AS, so up to max_procs x memory_mb in all);
  where a cgroup can be made (`cgroups.py`), each job gets 1 CPU's worth, a task cap and a memory cap
  for all its processes together, and is killed as a unit;
- "weak" tests: a candidate call on a variable of the test's own comprehension or lambda (e.g.
  `assert all(f(x) == y for x, y in pairs)`) is evaluated inside the sandbox and only its plain result
  trusted; it is flagged in details["weak_tests"];
- programs that hard-code the answers of tests they have seen (no verifier can tell);
- timing and host-global side channels (CPU caches, page cache, load, global kernel counters).

Where the kernel refuses namespaces or privileges (non-root without user namespaces), the sandbox runs
with what it has, logs a warning, and every Verdict carries details["isolation_warning"];
SandboxConfig(require_isolation=True) or SELFPLAY_SANDBOX_REQUIRE_ISOLATION=1 refuses instead.
"""

from verifiers.code.pool import SandboxConfig, SandboxError, SandboxPool, default_pool
from verifiers.code.verify import CodeVerifier, RunResult, extract_code, run_python, verify

__all__ = ["verify", "run_python", "RunResult", "CodeVerifier", "extract_code", "SandboxConfig", "SandboxPool",
           "SandboxError", "default_pool"]
