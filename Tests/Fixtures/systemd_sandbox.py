#!/usr/bin/env python3
"""Runs a command under the kernel-level restrictions a systemd unit file
would give it, where no systemd is PID 1 (CI, containers): the seccomp
filters of SystemCallFilter= (with SystemCallErrorNumber=), RestrictNamespaces=
and RestrictAddressFamilies=, CapabilityBoundingSet= and NoNewPrivileges=, and
(with --uid) an unprivileged user. Group names are expanded by
`systemd-analyze syscall-filter`, so the lists are the installed systemd's.

Not emulated: the mount namespace settings (ProtectSystem=, PrivateTmp=, ...),
PrivateUsers=, cgroup settings. Those need systemd itself.

Usage: systemd_sandbox.py UNIT [--uid N] -- COMMAND [ARGS...]
Needs root (to drop the bounding set and change uid) and libseccomp.
"""
import ctypes
import ctypes.util
import errno
import os
import socket
import subprocess
import sys

CLONE_FLAGS = {  # systemd's namespace_flag_map
    "cgroup": 0x02000000, "ipc": 0x08000000, "net": 0x40000000, "mnt": 0x00020000,
    "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000,
}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_LT, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 1, 6, 7


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | (e & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
libc = ctypes.CDLL(None, use_errno=True)


def rule(ctx, action, name, *cmps):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return
    arr = (ArgCmp * max(1, len(cmps)))(*cmps)
    lib.seccomp_rule_add_exact_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                                 ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    r = lib.seccomp_rule_add_exact_array(ctx, action, nr, len(cmps), arr)
    if r < 0 and r != -errno.EEXIST:
        sys.exit(f"systemd_sandbox: rule {name}: {os.strerror(-r)}")


def load(ctx):
    r = lib.seccomp_load(ctx)
    if r < 0:
        sys.exit(f"systemd_sandbox: seccomp_load: {os.strerror(-r)}")


def service_settings(unit):
    """[Service] assignments, in order: [(key, value)]."""
    out, section = [], None
    with open(unit) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                out.append((k.strip(), v.strip()))
    return out


def expand(names, seen=None):
    """Syscall names of `names` (groups expanded by systemd-analyze)."""
    seen = set() if seen is None else seen
    result = set()
    for n in names:
        if not n.startswith("@"):
            result.add(n)
            continue
        if n in seen:
            continue
        seen.add(n)
        text = subprocess.run(["systemd-analyze", "syscall-filter", n], capture_output=True, text=True, check=True).stdout
        members = [l.strip() for l in text.splitlines()[1:] if l.strip() and not l.strip().startswith("#")]
        result |= expand(members, seen)
    return result


def syscall_filter(settings):
    lines = [v for k, v in settings if k == "SystemCallFilter"]
    if not lines:
        return
    err = next((v for k, v in reversed(settings) if k == "SystemCallErrorNumber"), "EPERM")
    allowed, allow_list = set(), not lines[0].startswith("~")
    if allow_list:
        allowed |= expand(["@default"])
    for v in lines:
        if v.startswith("~"):
            names = expand(v[1:].split())
            if allow_list:
                allowed -= names
            else:
                allowed |= names  # a deny list: "allowed" holds the denied
        else:
            names = expand(v.split())
            allowed |= names
    code = getattr(errno, err)
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO(code) if allow_list else SCMP_ACT_ALLOW)
    for name in sorted(allowed):
        rule(ctx, SCMP_ACT_ALLOW if allow_list else SCMP_ACT_ERRNO(code), name)
    load(ctx)


def restrict_namespaces(settings):
    values = [v for k, v in settings if k == "RestrictNamespaces"]
    if not values:
        return
    v = values[-1]
    if v in ("no", "false", "off", "0"):
        return
    retain = set() if v in ("yes", "true", "on", "1") else set(v.split())
    if retain >= set(CLONE_FLAGS):
        return
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    # As systemd: clone3's flags cannot be inspected, so it answers ENOSYS.
    rule(ctx, SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
    if not retain:
        rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), "setns")
    else:
        rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), "setns", ArgCmp(1, SCMP_CMP_EQ, 0, 0))
    for name, flag in CLONE_FLAGS.items():
        if name in retain:
            continue
        for call, arg in (("unshare", 0), ("clone", 0)):
            rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), call, ArgCmp(arg, SCMP_CMP_MASKED_EQ, flag, flag))
        if retain:
            rule(ctx, SCMP_ACT_ERRNO(errno.EPERM), "setns", ArgCmp(1, SCMP_CMP_MASKED_EQ, flag, flag))
    load(ctx)


def restrict_address_families(settings):
    values = [v for k, v in settings if k == "RestrictAddressFamilies"]
    if not values or values[-1].startswith("~"):
        return

    allowed = {getattr(socket, n) for n in values[-1].split()}
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    for af in range(1, 64):
        if af not in allowed:
            rule(ctx, SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), "socket", ArgCmp(0, SCMP_CMP_EQ, af, 0))
    load(ctx)


def bounding_set(settings):
    values = [v for k, v in settings if k == "CapabilityBoundingSet"]
    if not values:
        return
    keep = set()
    for v in values:
        if v == "":
            keep = set()
        else:
            keep |= {n.upper() for n in v.split()}
    names = capability_names()
    for cap in range(64):
        name = names.get(cap)
        if name is not None and name in keep:
            continue
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break
            sys.exit(f"systemd_sandbox: PR_CAPBSET_DROP {cap}: {os.strerror(ctypes.get_errno())}")


CAPABILITIES = """chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable
net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace
sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease audit_write audit_control
setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore""".split()


def capability_names():
    return {i: "CAP_" + n.upper() for i, n in enumerate(CAPABILITIES)}


def main():
    args = sys.argv[1:]
    if "--" not in args or not args:
        sys.exit(__doc__)
    sep = args.index("--")
    unit, opts, command = args[0], args[1:sep], args[sep + 1:]
    uid = int(opts[opts.index("--uid") + 1]) if "--uid" in opts else None
    settings = service_settings(unit)
    bounding_set(settings)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # NoNewPrivileges=yes; an unprivileged process needs it for seccomp anyway.
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    restrict_address_families(settings)
    restrict_namespaces(settings)
    syscall_filter(settings)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
