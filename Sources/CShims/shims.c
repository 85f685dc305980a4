// See include/CShims.h for why each function exists.
#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int cshims_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshims_set_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshims_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0 ? 0 : -errno;
}

// Writes errno to the report pipe and exits; async-signal-safe only.
static void cshims_child_fail(int report_fd) {
    int err = errno;
    ssize_t ignored = write(report_fd, &err, sizeof err);
    (void)ignored;
    _exit(127);
}

// Closes every descriptor >= lowfd except `keep`; close_range with a loop fallback.
static void cshims_close_from(int lowfd, int keep) {
    if (keep > lowfd) {
        if (syscall(SYS_close_range, lowfd, keep - 1, 0) != 0) {
            for (int fd = lowfd; fd < keep; fd++) close(fd);
        }
    }
    int from = keep >= lowfd ? keep + 1 : lowfd;
    if (syscall(SYS_close_range, from, ~0U, 0) != 0) {
        for (int fd = from; fd < 65536; fd++) close(fd);
    }
}

pid_t cshims_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd,
                   int uid, int gid, const char *cwd) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(report[0]);
        close(report[1]);
        return -err;
    }
    if (pid == 0) {
        // Child: only async-signal-safe calls until execve.
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < NSIG; s++) {
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        }
        if (setsid() < 0) cshims_child_fail(report[1]);
        // Move the stdio sources above 2 first so dup2 cannot clobber them.
        int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
        for (int i = 0; i < 3; i++) {
            if (fds[i] >= 0 && fds[i] < 3) {
                int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (moved < 0) cshims_child_fail(report[1]);
                fds[i] = moved;
            }
        }
        for (int i = 0; i < 3; i++) {
            int src = fds[i];
            if (src < 0) {
                src = open("/dev/null", O_RDWR);
                if (src < 0) cshims_child_fail(report[1]);
            }
            if (dup2(src, i) < 0) cshims_child_fail(report[1]);
        }
        // Close everything else except the report pipe (CLOEXEC closes it on exec).
        cshims_close_from(3, report[1]);
        if (uid >= 0) {
            gid_t g = (gid_t)(gid >= 0 ? gid : uid);
            if (setgroups(1, &g) != 0) cshims_child_fail(report[1]);
            if (setresgid(g, g, g) != 0) cshims_child_fail(report[1]);
            if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) cshims_child_fail(report[1]);
        }
        if (cwd != NULL && chdir(cwd) != 0) cshims_child_fail(report[1]);
        execve(path, argv, envp);
        cshims_child_fail(report[1]);
    }
    close(report[1]);
    int err = 0;
    ssize_t n;
    do {
        n = read(report[0], &err, sizeof err);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof err) {
        // exec failed: reap the child so it does not linger as a zombie.
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -err;
    }
    return pid;
}

int cshims_unshare_user_namespace(void) {
    return unshare(CLONE_NEWUSER) == 0 ? 0 : -errno;
}

int cshims_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cshims_wifexited(int status) { return WIFEXITED(status); }
int cshims_wexitstatus(int status) { return WEXITSTATUS(status); }
int cshims_wifsignaled(int status) { return WIFSIGNALED(status); }
int cshims_wtermsig(int status) { return WTERMSIG(status); }

// Landlock's UAPI structs, declared here so older kernel headers still build.
struct cshims_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct cshims_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define CSHIMS_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define CSHIMS_LANDLOCK_RULE_PATH_BENEATH 1

int cshims_landlock_abi_version(void) {
    long r = syscall(SYS_landlock_create_ruleset, NULL, 0, CSHIMS_LANDLOCK_CREATE_RULESET_VERSION);
    return r < 0 ? -errno : (int)r;
}

int cshims_landlock_create_ruleset(uint64_t handled_fs, uint64_t scoped) {
    struct cshims_landlock_ruleset_attr attr = {handled_fs, 0, scoped};
    // ABI < 6 kernels reject a struct larger than they know only if the
    // extra bytes are non-zero; pass the short size when unscoped anyway.
    size_t size = scoped ? sizeof attr : 2 * sizeof(uint64_t);
    long r = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    return r < 0 ? -errno : (int)r;
}

int cshims_landlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed) {
    struct cshims_landlock_path_beneath_attr attr = {allowed, parent_fd};
    long r = syscall(SYS_landlock_add_rule, ruleset_fd, CSHIMS_LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
    return r < 0 ? -errno : 0;
}

int cshims_landlock_restrict_self(int ruleset_fd) {
    long r = syscall(SYS_landlock_restrict_self, ruleset_fd, 0);
    return r < 0 ? -errno : 0;
}

uint32_t cshims_scmp_act_errno(uint16_t err) { return SCMP_ACT_ERRNO(err); }

int cshims_openat2_beneath(int dirfd, const char *path, int flags, mode_t mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long r;
    do {
        r = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

int cshims_o_path(void) { return O_PATH; }

int cshims_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }
