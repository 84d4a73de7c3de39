"""Per-worker cgroups for the code sandbox: one CPU's worth per job, task and memory caps, kill as a unit.

What it is for: `JobCgroups.create(name, cpus=1.0, max_tasks=34)` runs in the trusted parent, once
per worker. It makes a child cgroup of our own cgroup in each hierarchy that offers what we need:
cgroup v2 where its controllers can be enabled for our children, else the v1 `cpu` / `pids`
hierarchies; it writes the CPU quota (cpu.max, or cpu.cfs_quota_us/cfs_period_us) and the task cap
(pids.max), sets the memory cap of all the job's processes together before each job (`set_memory`:
memory.max, or memory.limit_in_bytes), and opens the files the worker needs: `cgroup.procs` of each (a job child writes "0"
there, still root and before any candidate code, so the job and all its descendants are inside;
a v1 `cpu` cgroup is instead entered once by the worker's mostly idle template process, since moving
a task into one costs about 4 ms on this kernel, and each job is then born inside it) and
v2's `cgroup.kill` (the zygote writes "1" there when a job ends or times out). A worker runs one job
at a time, so its cgroups hold one job at a time: each job gets the whole quota, and its processes
share it however many it forks. `report` says what was obtained and `warnings` names what was not.

The cgroups keep the default CPU weight: a group's weight replaces its members' nice values, so the
jobs of a niced verifier compete as nice 0 (still capped at `cpus` each). Lowering the weight to
match the nice value was tried and made short jobs 3-4x slower on a busy host (a group woken for a
few milliseconds gets only a fraction of its weight), so it is not done.

Between jobs, `residue()` says whether the last job left anything charged once its processes are
gone (tasks, anonymous or shared memory pinned past its end): the pool then replaces the worker, so
the next job starts from empty cgroups. A memory cap the kernel refuses (`set_memory`, e.g. EBUSY when
lowering it below what is still charged) raises `LimitNotApplied`: the job is never run under a
weaker cap (the pool retries it on a fresh worker, and refuses it if that fails too).

What it does NOT do: change the cgroup of this process or of anything but our own job children. A
cgroup that cannot be made at start is a warning (RLIMIT_CPU / RLIMIT_AS per process still apply).
Only the standard library is used.
"""

from __future__ import annotations

import os
import signal
import time

PERIOD_US = 100_000
CONTROLLERS = ("cpu", "pids", "memory")
MEMORY_FILES = {"v2": ("memory.max", "max"), "v1": ("memory.limit_in_bytes", "-1")}
RESIDUE_BYTES = 1 << 20  # anonymous/shared memory still charged after a job's processes are all gone


class LimitNotApplied(OSError):
    """The kernel refused a per-job limit: the job must not run under a weaker one."""


class JobCgroups:
    """The cgroup directories of one worker, and the open files its zygote is given."""

    def __init__(self) -> None:
        self.dirs: list[str] = []
        self.join_fds: list[int] = []  # cgroup.procs a job child writes "0" to
        self.enter_fds: list[int] = []  # cgroup.procs the zygote itself enters once (v1 cpu)
        self.kill_fd: int | None = None
        self.report: dict = {"cpu": None, "pids": None, "memory": None, "kill": None}
        self._memory: tuple[str, str] | None = None  # (file, "no limit" value)
        self._memory_set: int | None = None
        self._pids_dir: str | None = None
        self.warnings: list[str] = []

    @classmethod
    def create(cls, name: str, *, cpus: float, max_tasks: int) -> "JobCgroups":
        self = cls()
        if os.geteuid() != 0:
            self.warnings.append(cpu_warning("not root"))
            return self
        mounts, own = _mounts(), _own_cgroups()
        missing = self._try_v2(mounts, own, name, cpus, max_tasks)
        for controller in missing:
            self._try_v1(mounts, own, controller, name, cpus, max_tasks)
        if not self.report["cpu"]:
            self.warnings.append(cpu_warning(self._why.get("cpu", "no cpu controller")))
        return self

    _why: dict

    def _try_v2(self, mounts: dict, own: dict, name: str, cpus: float, max_tasks: int) -> list[str]:
        """Use cgroup v2 for every controller it can give our children; return the ones it cannot."""
        self._why = {}
        root = mounts.get("cgroup2")
        if root is None or "" not in own:
            self._why["cpu"] = "no cgroup v2 hierarchy"
            return list(CONTROLLERS)
        base = os.path.join(root, own[""].lstrip("/"))
        available = _read(os.path.join(base, "cgroup.controllers")).split()
        enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
        for controller in CONTROLLERS:
            if controller in available and controller not in enabled:
                try:
                    _write(os.path.join(base, "cgroup.subtree_control"), f"+{controller}")
                    enabled.append(controller)
                except OSError as exc:  # e.g. EBUSY: our own cgroup has processes (no internal processes rule)
                    self._why[controller] = f"cannot enable {controller} in {base} ({exc.strerror})"
        path = self._make_dir(base, name)
        if path is None:
            return list(CONTROLLERS)
        if os.path.exists(os.path.join(path, "cgroup.kill")):
            self.kill_fd = os.open(os.path.join(path, "cgroup.kill"), os.O_WRONLY | os.O_CLOEXEC)
            self.report["kill"] = "cgroup v2 cgroup.kill"
        got = []
        if "cpu" in enabled and self._limit(path, {"cpu.max": f"{int(cpus * PERIOD_US)} {PERIOD_US}"}):
            self.report["cpu"] = f"cgroup v2 cpu.max ({cpus:g} CPU per job)"
            got.append("cpu")
        if "pids" in enabled and self._limit(path, {"pids.max": str(max_tasks)}):
            self.report["pids"] = f"cgroup v2 pids.max ({max_tasks})"
            self._pids_dir = path
            got.append("pids")
        if "memory" in enabled and os.path.exists(os.path.join(path, "memory.max")):
            self._memory = (os.path.join(path, "memory.max"), "max")
            self.report["memory"] = "cgroup v2 memory.max (per job)"
            got.append("memory")
        self._why.setdefault("cpu", "cgroup v2 offers no cpu controller here")
        self._join(path)
        return [c for c in CONTROLLERS if c not in got]

    def _try_v1(self, mounts: dict, own: dict, controller: str, name: str, cpus: float, max_tasks: int) -> None:
        root = mounts.get(controller)
        if root is None or controller not in own:
            return
        path = self._make_dir(os.path.join(root, own[controller].lstrip("/")), name)
        if path is None:
            return
        if controller == "cpu":
            ok = self._limit(path, {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(int(cpus * PERIOD_US))})
            self.report["cpu"] = f"cgroup v1 cpu.cfs_quota_us ({cpus:g} CPU per job)" if ok else None
        elif controller == "memory":
            ok = os.path.exists(os.path.join(path, "memory.limit_in_bytes"))
            self._memory = (os.path.join(path, "memory.limit_in_bytes"), "-1") if ok else None
            self.report["memory"] = "cgroup v1 memory.limit_in_bytes (per job)" if ok else None
        else:
            ok = self._limit(path, {"pids.max": str(max_tasks)})
            self.report["pids"] = f"cgroup v1 pids.max ({max_tasks})" if ok else None
            self._pids_dir = path if ok else None
        if ok:
            self._join(path, self.enter_fds if controller == "cpu" else self.join_fds)

    def _make_dir(self, base: str, name: str) -> str | None:
        _sweep_stale(base, name.rsplit("-", 2)[0] + "-")
        path = os.path.join(base, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError as exc:
            self._why.setdefault("cpu", f"cannot create a cgroup under {base} ({exc.strerror})")
            return None
        self.dirs.append(path)
        return path

    def _limit(self, path: str, values: dict[str, str]) -> bool:
        try:
            for key, value in values.items():
                _write(os.path.join(path, key), value)
            return True
        except OSError as exc:
            self._why.setdefault("cpu", f"cannot write {path} ({exc.strerror})")
            return False

    def _join(self, path: str, fds: list[int] | None = None) -> None:
        try:
            (self.join_fds if fds is None else fds).append(
                os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            pass

    def set_memory(self, limit_bytes: int) -> None:
        """Cap the memory of the next job's processes together (written only when it changes). If the
        kernel refuses (e.g. EBUSY: lowering it below what is still charged), raise LimitNotApplied:
        the job must not run under a weaker cap (the pool retries it on a fresh worker)."""
        if self._memory is None or limit_bytes == self._memory_set:
            return
        path, _ = self._memory
        try:
            _write(path, str(limit_bytes))
            self._memory_set = limit_bytes
        except OSError as exc:
            self._memory_set = None
            raise LimitNotApplied(f"cannot set {os.path.basename(path)} to {limit_bytes >> 20} MiB "
                                  f"({exc.strerror})") from None

    def residue(self) -> str:
        """What the last job left charged to this worker's cgroups once all its processes are gone:
        tasks (pids.current), anonymous or shared memory (memfd, tmpfs, SysV shm kept alive past the
        job). Page cache of files it read and reclaimable kernel caches do not count. "" = nothing."""
        found = []
        if self._pids_dir and _read_int(os.path.join(self._pids_dir, "pids.current")) > 0:
            found.append("tasks still in the job cgroup")
        if self._memory is not None:
            stat = _memory_stat(os.path.dirname(self._memory[0]))
            pinned = stat.get("rss", 0) + stat.get("shmem", 0) + stat.get("anon", 0)
            if pinned > RESIDUE_BYTES:
                found.append(f"{pinned >> 20} MiB of anonymous/shared memory still charged")
        return "; ".join(found)

    def fds(self) -> list[int]:
        return self.join_fds + self.enter_fds + ([self.kill_fd] if self.kill_fd is not None else [])

    def close(self, wait_s: float = 5.0) -> None:
        """Close our files, SIGKILL what is still inside (only this worker's zygote and jobs ever are:
        the zygote's PID-1 child dies a moment after the stub the caller waited for), and remove the
        directories; never raises."""
        for fd in self.fds():
            try:
                os.close(fd)
            except OSError:
                pass
        self.join_fds, self.enter_fds, self.kill_fd = [], [], None
        deadline = time.monotonic() + wait_s
        for path in reversed(self.dirs):
            while True:
                for pid in _read(os.path.join(path, "cgroup.procs")).split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (OSError, ValueError):
                        pass
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
        self.dirs = []


_swept: set[str] = set()


def _sweep_stale(base: str, prefix: str) -> None:
    """Remove empty cgroups `<prefix><pid>-<n>` left by verifier processes that died (once per base)."""
    if base in _swept:
        return
    _swept.add(base)
    try:
        names = [n for n in os.listdir(base) if n.startswith(prefix)]
    except OSError:
        return
    for entry in names:
        pid = entry[len(prefix):].split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.rmdir(os.path.join(base, entry))
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cpu_warning(why: str) -> str:
    return (f"no per-job CPU bound ({why}): a job's processes together may use several CPUs, so a candidate's "
            "spinning children can slow a neighbour's check (each process is still capped by RLIMIT_CPU and "
            "the wall-clock deadline, and all of them are killed when the job ends)")


def _mounts() -> dict[str, str]:
    """Mount point per hierarchy: "cgroup2" for v2, the controller name for each v1 one."""
    found: dict[str, str] = {}
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        if rest[0] == "cgroup2":
            found.setdefault("cgroup2", fields[4])
        elif rest[0] == "cgroup":
            for option in rest[2].split(","):
                if option in CONTROLLERS:
                    found.setdefault(option, fields[4])
    return found


def _own_cgroups() -> dict[str, str]:
    """Our cgroup path per hierarchy: "" for v2, the controller name for each v1 one."""
    own: dict[str, str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            own[controller] = parts[2]
    return own


def _read_int(path: str) -> int:
    try:
        return int(_read(path).split()[0])
    except (IndexError, ValueError):
        return 0


def _memory_stat(path: str) -> dict[str, int]:
    """memory.stat of a cgroup (v1 or v2 names), local counters only."""
    found: dict[str, int] = {}
    for line in _read(os.path.join(path, "memory.stat")).splitlines():
        key, _, value = line.partition(" ")
        if value.isdigit() and not key.startswith("total_"):
            found[key] = int(value)
    return found


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
