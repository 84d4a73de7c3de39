"""Kernel-level isolation for the code sandbox: namespaces, a minimal read-only filesystem, rlimits, uid drop.

What it is for: the primitives the warm template process (`zygote.py`) uses to fence itself in once at
start-up (network, PID, mount, IPC and UTS namespaces; a private root made of read-only bind mounts of
the system and Python directories, a fresh /proc, an empty /dev, a root-owned /tmp) and that each
job child uses before candidate code runs (rlimits, dropping to an unprivileged uid, no_new_privs).
Everything degrades: each step that the kernel or our privileges refuse is recorded by name in an
`IsolationReport`-style dict so the caller can say so loudly or refuse to run.

Seccomp: `install_seccomp` denies (EPERM) the kernel keyring syscalls (add_key, request_key,
keyctl), io_uring (its rings can hold files and requests past a job), unshare, setns, and clone with
any CLONE_NEW* flag (no new user namespaces); clone3 gets
ENOSYS so libc falls back to the inspectable clone. Everything else is allowed (it is a deny list
against cross-job residue and namespace games, not a general syscall sandbox).

What it does NOT do: general seccomp syscall filtering, cgroups (see `cgroups.py`, run by the parent; here
memory is bounded per process by RLIMIT_AS), or any defence against kernel bugs.
It imports only the standard library: it runs inside the sandbox's own interpreter.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
_PIVOT_ROOT_NR = {"x86_64": 155, "aarch64": 41, "arm64": 41}
NAMESPACES = {"net": CLONE_NEWNET, "pid": CLONE_NEWPID, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
              "uts": CLONE_NEWUTS}
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({nstype:#x})")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def umount(target: str) -> None:
    """Lazy unmount (O(1) for the caller; the kernel frees the tmpfs when its last user is gone)."""
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (no orphaned sandboxes)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# ----------------------------------------------------------------------------------------- namespaces
def enter_namespaces(want: tuple[str, ...]) -> dict[str, bool]:
    """Unshare every namespace in `want` that the kernel allows; return which ones we got.

    As non-root, a user namespace (mapping our uid to root inside) is tried first, since it is what
    makes the others possible without privileges.
    """
    got = {name: False for name in want}
    flags = 0
    for name in want:
        flags |= NAMESPACES[name]
    if os.geteuid() != 0 and not _enter_user_namespace():
        return got
    try:
        unshare(flags)
        return {name: True for name in want}
    except OSError:
        pass
    for name in want:  # all at once failed: take what we can, one by one
        try:
            unshare(NAMESPACES[name])
            got[name] = True
        except OSError:
            pass
    return got


def _enter_user_namespace() -> bool:
    uid, gid = os.geteuid(), os.getegid()
    try:
        unshare(CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------- filesystem
def build_private_root(newroot: str, python_dirs: list[str], tmp_size_mb: int) -> list[str]:
    """Assemble a minimal root at `newroot` (already a fresh tmpfs mount) and pivot into it.

    Read-only: the system dirs and the Python installation(s); fresh: /proc, /dev (a few device
    nodes), /tmp (root-owned, size-capped, holds the per-job work dirs). Nothing else of the host
    (home dirs, the repository, datasets, run stores) is visible. Returns warnings for skipped parts.
    """
    warnings: list[str] = []
    for name in SYSTEM_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), newroot + host)
        elif os.path.isdir(host):
            _bind_readonly(host, newroot + host)
    for path in _outermost(python_dirs):
        if not path.startswith(tuple("/" + d + "/" for d in SYSTEM_DIRS)):
            _bind_readonly(path, newroot + path)
    _make_dev(newroot, warnings)
    os.makedirs(newroot + "/proc", exist_ok=True)
    _mount_proc(newroot + "/proc", warnings)
    os.makedirs(newroot + "/tmp", exist_ok=True)
    mount("tmpfs", newroot + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size_mb}m,mode=0755")
    _pivot_into(newroot, warnings)
    try:
        mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except OSError as exc:
        warnings.append(f"root not read-only ({exc.strerror})")
    return warnings


def _mount_proc(target: str, warnings: list[str]) -> None:
    """A fresh /proc for our PID namespace, where a job sees only its own uid's processes (hidepid): not
    the zygote, whose CPU time and context switches grow with what the previous job made it do."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    for data in ("hidepid=invisible", "hidepid=2"):
        try:
            mount("proc", target, "proc", flags, data)
            return
        except OSError:
            continue
    try:
        mount("proc", target, "proc", flags)
        warnings.append("/proc without hidepid: a job can read the zygote's process statistics")
    except OSError as exc:
        warnings.append(f"no private /proc ({exc.strerror})")


def _outermost(paths: list[str]) -> list[str]:
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    keep: list[str] = []
    for p in real:
        if not any(p == k or p.startswith(k + "/") for k in keep):
            keep.append(p)
    return keep


def _bind_readonly(source: str, target: str) -> None:
    os.makedirs(target, mode=0o755, exist_ok=True)
    mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | _locked_flags(source)
    mount(None, target, None, flags)


def _locked_flags(path: str) -> int:
    """Mount flags of the source that a remount inside a user namespace must keep."""
    st = os.statvfs(path).f_flag
    flags = MS_NOEXEC if st & os.ST_NOEXEC else 0
    flags |= MS_NOATIME if st & os.ST_NOATIME else 0
    flags |= MS_NODIRATIME if st & os.ST_NODIRATIME else 0
    flags |= MS_RELATIME if st & getattr(os, "ST_RELATIME", 4096) else 0
    return flags


def _make_dev(newroot: str, warnings: list[str]) -> None:
    dev = newroot + "/dev"
    os.makedirs(dev, mode=0o755, exist_ok=True)
    for name in DEVICES:
        try:
            open(f"{dev}/{name}", "w").close()
            mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
        except OSError as exc:
            warnings.append(f"no /dev/{name} ({exc.strerror})")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")


def _pivot_into(newroot: str, warnings: list[str]) -> None:
    """pivot_root(".", ".") then detach the old root: no path leads back to the host filesystem."""
    os.chdir(newroot)
    number = _PIVOT_ROOT_NR.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    else:
        warnings.append("pivot_root unavailable: chroot used (escapable only with CAP_SYS_CHROOT)")
        os.chroot(".")
    os.chdir("/")


def make_mount_private() -> None:
    """Stop mount events propagating between this namespace and the host's (must come first)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


# ----------------------------------------------------------------------------------------- per job
def apply_rlimits(*, cpu_s: int, memory_mb: int, max_procs: int, max_files: int, max_file_bytes: int) -> None:
    """Hard per-process limits for a job child (set while still root, so the uid drop cannot undo them)."""
    limits = {
        resource.RLIMIT_CPU: (cpu_s, cpu_s + 1),
        resource.RLIMIT_AS: (memory_mb << 20, memory_mb << 20),
        resource.RLIMIT_NPROC: (max_procs, max_procs),
        resource.RLIMIT_NOFILE: (max_files, max_files),
        resource.RLIMIT_FSIZE: (max_file_bytes, max_file_bytes),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MEMLOCK: (0, 0),
    }
    for which, value in limits.items():
        resource.setrlimit(which, value)


def drop_privileges(uid: int | None) -> None:
    """Become `uid` for good (real, effective and saved; no supplementary groups), then no_new_privs."""
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError:
        pass


def kill_all_but_me(uid: int | None, pid_namespace: bool) -> None:
    """SIGKILL every process the job left behind (daemons that double-forked included).

    In our own PID namespace we are its init, and kill(-1) reaches every other process in it.
    Without one, a throw-away child becomes `uid` and kills every process of that uid; without
    either, only the job's own process group can be reached (reported as a warning upstream).
    """
    if pid_namespace:
        _kill_minus_one()
        return
    if uid is None:
        return
    child = os.fork()
    if child == 0:
        try:
            os.setresuid(uid, uid, uid)
            _kill_minus_one()
        finally:
            os._exit(0)
    os.waitpid(child, 0)


def _kill_minus_one() -> None:
    try:
        os.kill(-1, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------------- seccomp
_SECCOMP = {  # arch: (AUDIT_ARCH, denied syscalls, clone, clone3)
    # add_key request_key keyctl unshare setns, io_uring_setup/enter/register
    "x86_64": (0xC000003E, (248, 249, 250, 272, 308, 425, 426, 427), 56, 435),
    "aarch64": (0xC00000B7, (217, 218, 219, 97, 268, 425, 426, 427), 220, 435),
}
_SECCOMP["arm64"] = _SECCOMP["aarch64"]
CLONE_NEW_ANY = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
EPERM, ENOSYS = 1, 38


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program() -> list[tuple[int, int, int, int]]:
    arch = _SECCOMP.get(platform.machine())
    if arch is None:
        raise OSError(0, f"no seccomp table for {platform.machine()}")
    audit, denied, clone, clone3 = arch
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JSET|K, BPF_RET|K
    deny, nosys, allow = SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ERRNO | ENOSYS, SECCOMP_RET_ALLOW
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit), (ret, 0, 0, deny), (ld, 0, 0, 0)]
    if audit == 0xC000003E:
        prog += [(0x35, 0, 1, 0x40000000), (ret, 0, 0, deny)]  # JGE: x32 ABI syscalls
    for number in denied:
        prog += [(jeq, 0, 1, number), (ret, 0, 0, deny)]
    prog += [(jeq, 0, 1, clone3), (ret, 0, 0, nosys),
             (jeq, 0, 3, clone), (ld, 0, 0, 16), (jset, 0, 1, CLONE_NEW_ANY), (ret, 0, 0, deny),
             (ret, 0, 0, allow)]
    return prog


def install_seccomp() -> None:
    """Install the deny-list filter on this process (and every process it starts); needs no_new_privs."""
    prog = _seccomp_program()
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog), 0, 0),
           "prctl(SECCOMP)")


def seccomp_self_test() -> None:
    """Install the filter here (call in a throw-away child) and check that it denies what it should."""
    install_seccomp()
    keyctl = _SECCOMP[platform.machine()][1][2]
    if _libc.syscall(keyctl, 0, 0, 0, 0, 0) != -1 or ctypes.get_errno() != EPERM:
        raise OSError(0, "seccomp filter did not deny keyctl")
    if _libc.unshare(ctypes.c_int(CLONE_NEWUSER)) != -1:
        raise OSError(0, "seccomp filter did not deny a new user namespace")
    if os.fork() == 0:  # plain fork still works
        os._exit(0)
    os.wait()
