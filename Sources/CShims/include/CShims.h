// CShims: the few C helpers agent-runner needs because Swift cannot express
// them safely: function-like macros, variadic C functions, raw syscalls
// without a libc wrapper, and the code between fork() and execve().
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
/// prctl(PR_SET_PDEATHSIG, sig): the child dies with the supervisor.
int cshims_set_parent_death_signal(int sig);

/// Forks and execs `path` in a new session with exactly `envp`, stdio taken
/// from the three fds, every other descriptor closed, optional uid/gid switch
/// (when uid >= 0) and working directory (when cwd != NULL). Only async-signal
/// -safe C runs between fork and exec. Returns the pid, or -errno when the fork
/// failed or the exec failed (reported over a CLOEXEC pipe).
pid_t cshims_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd,
                   int uid, int gid, const char *cwd);

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
int cshims_wifexited(int status);
int cshims_wexitstatus(int status);
int cshims_wifsignaled(int status);
int cshims_wtermsig(int status);

// MARK: Landlock (no libc wrappers exist for these syscalls)

/// Returns the kernel's Landlock ABI version, or -errno when unsupported.
int cshims_landlock_abi_version(void);
/// Creates a ruleset handling `handled_fs` filesystem rights and `scoped`
/// IPC scopes (ABI >= 6; pass 0 otherwise). Returns an fd or -errno.
int cshims_landlock_create_ruleset(uint64_t handled_fs, uint64_t scoped);
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

#endif
