// CShims: the few C helpers agent-runner needs because Swift cannot express
// them safely: function-like macros, variadic C functions, raw syscalls
// without a libc wrapper, and the code between clone and execve (nothing
// written in Swift may run there).
// Every symbol is prefixed `cshims_` and documented with why it exists.
#ifndef CSHIMS_H
#define CSHIMS_H

#include <stdint.h>
#include <sys/types.h>

// MARK: process control

/// prctl() is variadic in glibc; Swift cannot call it. Sets PR_SET_NO_NEW_PRIVS.
int cshims_set_no_new_privs(void);
/// prctl(PR_SET_DUMPABLE, 0): no core dumps, no ptrace attach by same-uid peers.
int cshims_set_not_dumpable(void);

/// How `cshims_spawn_ex` starts a process. Zero-initialise, then set fields;
/// -1 for any descriptor or id means "not used".
struct cshims_spawn_options {
    int stdin_fd, stdout_fd, stderr_fd;
    /// setresuid/setresgid before exec (only without CLONE_NEWUSER).
    int uid, gid;
    const char *cwd;
    /// CLONE_NEW* flags for clone3 (0: none, a fork). With CLONE_NEWUSER the
    /// parent maps `map_uid`/`map_gid` (outer ids) to 0 inside before the
    /// child goes on.
    uint64_t namespaces;
    int map_uid, map_gid;
    /// When set, the parent writes the child's pid here (a cgroup's
    /// cgroup.procs) before the child goes on: nothing it starts escapes.
    const char *cgroup_procs;
    /// prctl(PR_SET_PDEATHSIG) in the child (0: none). Fires when the
    /// spawning *thread* exits, so only for spawns from a long-lived thread.
    int death_signal;
    /// Out: a pidfd of the child (CLONE_PIDFD), or -1.
    int pidfd;
    /// A Landlock ruleset the child enforces on itself just before execve
    /// (a narrower layer on top of the caller's own), or -1 for none. The
    /// caller must have set no_new_privs.
    int landlock_ruleset_fd;
    /// A classic BPF seccomp program (struct sock_filter[], 8 bytes each) the
    /// child loads just before execve, or NULL; `seccomp_filter_bytes` is its
    /// length in bytes. Stacks on the caller's filter; needs no_new_privs.
    const void *seccomp_filter;
    size_t seccomp_filter_bytes;
};

/// fork/exec with namespaces, an id mapping, a cgroup and a pidfd, through
/// clone3(2), which glibc does not wrap (clone(2) where a seccomp filter
/// refuses clone3; never libc's fork(), whose atfork handlers are not
/// async-signal-safe). Every signal is blocked across the clone; the child
/// resets all handlers to SIG_DFL before it unblocks them, so no handler of
/// the caller runs in it. The child leads a new session and runs only
/// async-signal-safe code until execve. Returns the pid (in the caller's PID
/// namespace) or -errno; on success `options->pidfd` is set.
pid_t cshims_spawn_ex(const char *path, char *const argv[], char *const envp[],
                      struct cshims_spawn_options *options);

/// The CLONE_NEW* flags, which glibc declares only under _GNU_SOURCE.
uint64_t cshims_clone_newuser(void);
uint64_t cshims_clone_newpid(void);
uint64_t cshims_clone_newnet(void);

/// pidfd_send_signal(2): signals the exact process a pidfd refers to, which
/// (unlike a pid) can never be recycled. Returns 0 or -errno.
int cshims_pidfd_signal(int pidfd, int sig);

/// waitid(P_PID, pid, WEXITED|WNOWAIT): waits until the child has exited
/// without reaping it, so its pid (and process group id) stay reserved while
/// the caller signals the group. Returns 0 or -errno.
int cshims_wait_exited_nowait(pid_t pid);

/// PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to the caller
/// (the job child's fallback when it cannot be init of a PID namespace).
int cshims_set_child_subreaper(void);

/// Drops every capability for good: the bounding and ambient sets, the
/// effective/permitted/inheritable sets, and locked securebits so that a uid
/// of 0 (root inside the job's user namespace) regains nothing at execve.
/// Where a seccomp filter refuses capset (EPERM), the caller keeps its own
/// capabilities but nothing it execs gains any. Returns 0 or -errno.
int cshims_drop_capabilities(void);

/// Brings the loopback interface up (SIOCSIFFLAGS on "lo"): a new network
/// namespace starts with it down. Returns 0 or -errno.
int cshims_loopback_up(void);

/// Installs the SIGTERM handler of a PID namespace's init: SIGKILL to every
/// other process of the namespace (kill(-1) from pid 1 reaches only those),
/// then _exit(143). Async-signal-safe. Only call it when getpid() == 1.
int cshims_install_init_sigterm(void);

// MARK: the job's mount namespace

/// unshare(CLONE_NEWNS), then every mount made a recursive slave (a mount
/// namespace owned by a user namespace must not propagate back; unmounts on
/// the host still reach it). Returns 0 or -errno.
int cshims_unshare_mount_namespace(void);
/// A fresh tmpfs (nosuid, nodev, `mode`, at most `size_kb` KiB) on `target`:
/// what the job sees of /tmp, /run and /dev/shm. Returns 0 or -errno.
int cshims_mount_tmpfs(const char *target, mode_t mode, unsigned size_kb);
/// A recursive bind of the directory open as `fd` onto `target`, through
/// /proc/self/fd (the kernel follows that link to the open directory itself,
/// even after its path has been covered by a tmpfs). Returns 0 or -errno.
int cshims_bind_fd(int fd, const char *target);
/// A fresh procfs on `target` (nosuid, nodev, noexec) for the caller's PID
/// namespace. Returns 0 or -errno.
int cshims_mount_proc(const char *target);

/// unshare(CLONE_NEWUSER): glibc declares unshare and CLONE_* only under
/// _GNU_SOURCE. Used by `agent-runner-job --self-test` to prove that the
/// seccomp filter refuses namespace creation. Returns 0 or -errno.
int cshims_unshare_user_namespace(void);

/// pipe2(fds, O_CLOEXEC): glibc declares pipe2 only under _GNU_SOURCE.
int cshims_pipe_cloexec(int fds[2]);
/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): also _GNU_SOURCE-only in glibc. The
/// health endpoint's connections must not leak into job children.
int cshims_accept_cloexec(int fd);

/// The wait(2) status macros, exported as functions.
int cshims_wexitstatus(int status);
int cshims_wifsignaled(int status);
int cshims_wtermsig(int status);

// MARK: Landlock (no libc wrappers exist for these syscalls)

/// Returns the kernel's Landlock ABI version, or -errno when unsupported.
int cshims_landlock_abi_version(void);
/// Creates a ruleset handling `handled_fs` filesystem rights, `handled_net`
/// network rights (ABI >= 4; 0 otherwise) and `scoped` IPC scopes (ABI >= 6;
/// 0 otherwise). Returns an fd or -errno.
int cshims_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped);
/// Allows `allowed` network rights for TCP `port` (LANDLOCK_RULE_NET_PORT).
/// Returns 0 or -errno.
int cshims_landlock_add_port_rule(int ruleset_fd, uint64_t port, uint64_t allowed);
/// Allows `allowed` rights beneath the directory or file open as `parent_fd`
/// (an O_PATH descriptor). Returns 0 or -errno.
int cshims_landlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed);
/// Enforces the ruleset on the calling thread (and, via no_new_privs, its
/// descendants). Returns 0 or -errno.
int cshims_landlock_restrict_self(int ruleset_fd);

// MARK: seccomp

/// SCMP_ACT_ERRNO(x) is a macro; Swift needs a function.
uint32_t cshims_scmp_act_errno(uint16_t err);

// MARK: safe file creation

/// openat2(dirfd, path, flags, mode) with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
/// RESOLVE_NO_MAGICLINKS, so no component may escape `dirfd` or be a symlink.
/// Returns an fd, -ENOSYS when the kernel lacks openat2, or -errno.
int cshims_openat2_beneath(int dirfd, const char *path, int flags, mode_t mode);

/// O_PATH is only visible to C under _GNU_SOURCE; Swift's Glibc module hides it.
int cshims_o_path(void);

// MARK: epoll (one thread for every child's pipes and exit)

/// Swift's Glibc module does not include <sys/epoll.h>, and `struct
/// epoll_event` is packed on x86_64: these take and give plain values.
/// epoll_create1(EPOLL_CLOEXEC). Returns an fd or -errno.
int cshims_epoll_create(void);
/// Adds `fd` (`readable`: EPOLLIN, else EPOLLOUT) under the id `data`. 0 or -errno.
int cshims_epoll_add(int epfd, int fd, int readable, uint64_t data);
/// Removes `fd`. 0 or -errno.
int cshims_epoll_del(int epfd, int fd);
/// Waits (no timeout) for up to `max` ready descriptors: their ids in `data`.
/// Returns how many, or -errno (-EINTR included).
int cshims_epoll_wait(int epfd, uint64_t *data, int max);

// MARK: build facts

/// The git commit this binary was built from, or "unknown". A build step
/// (scripts/build-commit.sh, run by `make`) writes a git-ignored header beside
/// build_info.c; C can include it only when it exists (__has_include), which
/// Swift cannot express, so a plain `swift build` without git still builds.
const char *cshims_build_commit(void);

#endif
