// See include/CShims.h for why each function exists.
#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <unistd.h>

int cshims_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshims_set_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -errno;
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

int cshims_unshare_user_namespace(void) {
    return unshare(CLONE_NEWUSER) == 0 ? 0 : -errno;
}

int cshims_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

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

int cshims_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped) {
    struct cshims_landlock_ruleset_attr attr = {handled_fs, handled_net, scoped};
    // Older kernels reject a struct larger than they know only if the extra
    // bytes are non-zero; pass the shortest size that holds what is set.
    size_t size = scoped ? sizeof attr : (handled_net ? 2 * sizeof(uint64_t) : sizeof(uint64_t));
    long r = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    return r < 0 ? -errno : (int)r;
}

int cshims_landlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed) {
    struct cshims_landlock_path_beneath_attr attr = {allowed, parent_fd};
    long r = syscall(SYS_landlock_add_rule, ruleset_fd, CSHIMS_LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
    return r < 0 ? -errno : 0;
}

struct cshims_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
} __attribute__((packed));

int cshims_landlock_add_port_rule(int ruleset_fd, uint64_t port, uint64_t allowed) {
    struct cshims_landlock_net_port_attr attr = {allowed, port};
    long r = syscall(SYS_landlock_add_rule, ruleset_fd, 2 /* LANDLOCK_RULE_NET_PORT */, &attr, 0);
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

// MARK: spawning with namespaces

// Writes `text` to `path` (a /proc or cgroup file) in one write; 0 or -errno.
static int cshims_write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = strlen(text);
    ssize_t n;
    do { n = write(fd, text, len); } while (n < 0 && errno == EINTR);
    int err = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return err;
}

// Parent side: the id maps, then the cgroup; 0 or -errno.
static int cshims_prepare_child(pid_t pid, const struct cshims_spawn_options *o) {
    char path[64], text[64];
    int r;
    if (o->namespaces & CLONE_NEWUSER) {
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if ((r = cshims_write_file(path, "deny")) != 0 && r != -ENOENT) return r;
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        snprintf(text, sizeof text, "0 %d 1\n", o->map_uid);
        if ((r = cshims_write_file(path, text)) != 0) return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        snprintf(text, sizeof text, "0 %d 1\n", o->map_gid);
        if ((r = cshims_write_file(path, text)) != 0) return r;
    }
    if (o->cgroup_procs != NULL) {
        snprintf(text, sizeof text, "%d\n", (int)pid);
        if ((r = cshims_write_file(o->cgroup_procs, text)) != 0) return r;
    }
    return 0;
}

// The child's side of cshims_spawn_ex, from the clone to execve: only
// async-signal-safe calls. Never returns.
static void cshims_spawn_child(const char *path, char *const argv[], char *const envp[],
                               const struct cshims_spawn_options *o, int report[2], int go[2]) {
    // Child: only async-signal-safe calls until execve. The parent blocked
    // every signal across the clone, so none can run one of its (Swift)
    // handlers here: first every handler back to SIG_DFL (which also drops a
    // pending signal whose default is to ignore it), and only then an empty
    // mask for the program we exec.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    // Wait for the parent to map ids and place us in the cgroup.
    close(go[1]);
    char byte;
    ssize_t g;
    do { g = read(go[0], &byte, 1); } while (g < 0 && errno == EINTR);
    if (g != 1) _exit(127);
    if (setsid() < 0) cshims_child_fail(report[1]);
    if (o->death_signal > 0 && prctl(PR_SET_PDEATHSIG, o->death_signal, 0, 0, 0) != 0) cshims_child_fail(report[1]);
    // The program's own narrower layers, last before the descriptors are
    // rearranged (the ruleset's descriptor is closed with the others).
    if (o->landlock_ruleset_fd >= 0 && syscall(SYS_landlock_restrict_self, o->landlock_ruleset_fd, 0) != 0)
        cshims_child_fail(report[1]);
    if (o->seccomp_filter != NULL) {
        struct sock_fprog prog = {(unsigned short)(o->seccomp_filter_bytes / sizeof(struct sock_filter)),
                                  (struct sock_filter *)(uintptr_t)o->seccomp_filter};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) cshims_child_fail(report[1]);
    }
    int fds[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
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
    cshims_close_from(3, report[1]);
    if (o->namespaces & CLONE_NEWUSER) {
        // Become the mapped ids (0 inside) when the map names other ids than
        // the parent's (JOB_UID_RANGE): until then our credentials are still
        // the parent's. When it maps the parent's own ids we are 0 already,
        // and need no set*id call (which a service's seccomp may refuse).
        if (syscall(SYS_getgid) != 0 && syscall(SYS_setresgid, 0, 0, 0) != 0) cshims_child_fail(report[1]);
        if (syscall(SYS_getuid) != 0 && syscall(SYS_setresuid, 0, 0, 0) != 0) cshims_child_fail(report[1]);
    }
    if (o->uid >= 0 && !(o->namespaces & CLONE_NEWUSER)) {
        gid_t gid = (gid_t)(o->gid >= 0 ? o->gid : o->uid);
        if (syscall(SYS_setgroups, 1, &gid) != 0) cshims_child_fail(report[1]);
        if (syscall(SYS_setresgid, gid, gid, gid) != 0) cshims_child_fail(report[1]);
        if (syscall(SYS_setresuid, o->uid, o->uid, o->uid) != 0) cshims_child_fail(report[1]);
    }
    if (o->cwd != NULL && chdir(o->cwd) != 0) cshims_child_fail(report[1]);
    execve(path, argv, envp);
    cshims_child_fail(report[1]);
}

pid_t cshims_spawn_ex(const char *path, char *const argv[], char *const envp[],
                      struct cshims_spawn_options *o) {
    o->pidfd = -1;
    int report[2], go[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    if (pipe2(go, O_CLOEXEC) != 0) {
        int err = errno;
        close(report[0]); close(report[1]);
        return -err;
    }
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD | o->namespaces;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    // Every signal blocked across the clone: the child inherits the full mask
    // and unblocks only after resetting the handlers it inherited. (glibc
    // keeps its two internal signals out of any mask; they are only ever
    // sent to threads of this process, never to the new one.)
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    // Raw system calls only, never libc's fork(): it runs pthread_atfork
    // handlers in the child, which in a multi-threaded process can wait
    // forever for a lock another thread held at the clone.
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && errno == ENOSYS) {
        // clone3 refused: seccomp filters answer ENOSYS so that clone's flags
        // stay inspectable (the job's own filter; systemd's RestrictNamespaces=).
        // clone with the same namespace flags (none: a fork without libc's
        // atfork handlers), then pidfd_open.
        pid = (pid_t)syscall(SYS_clone, (unsigned long)(o->namespaces | SIGCHLD), NULL, NULL, NULL, 0UL);
        if (pid > 0) pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    if (pid == 0) cshims_spawn_child(path, argv, envp, o, report, go);
    int clone_err = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        close(report[0]); close(report[1]); close(go[0]); close(go[1]);
        return -clone_err;
    }
    close(report[1]);
    close(go[0]);
    int err = cshims_prepare_child(pid, o);
    if (err == 0) {
        char byte = 1;
        ssize_t w;
        do { w = write(go[1], &byte, 1); } while (w < 0 && errno == EINTR);
        if (w != 1) err = -EPIPE;
    }
    close(go[1]);
    if (err != 0) {
        kill(pid, SIGKILL);
        close(report[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        close(pidfd);
        return err;
    }
    int code = 0;
    ssize_t n;
    do { n = read(report[0], &code, sizeof code); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof code) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        close(pidfd);
        return -code;
    }
    o->pidfd = pidfd;
    return pid;
}

uint64_t cshims_clone_newuser(void) { return CLONE_NEWUSER; }
uint64_t cshims_clone_newpid(void) { return CLONE_NEWPID; }
uint64_t cshims_clone_newnet(void) { return CLONE_NEWNET; }

int cshims_pidfd_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 ? 0 : -errno;
}

int cshims_wait_exited_nowait(pid_t pid) {
    siginfo_t info;
    int r;
    do { r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT); } while (r < 0 && errno == EINTR);
    return r == 0 ? 0 : -errno;
}

int cshims_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshims_drop_capabilities(void) {
    // Locked securebits first (needs CAP_SETPCAP, which we still hold when we have any).
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0 && errno != EPERM) return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break;   // past the kernel's last capability
            if (errno != EPERM) return -errno;
        }
    }
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    // A service's seccomp filter may refuse capset (systemd's ~@privileged).
    // The locked securebits and the empty bounding and ambient sets already
    // keep every program this process starts from gaining a capability; only
    // this trusted process keeps its own, inside its user namespace.
    if (syscall(SYS_capset, &header, data) != 0 && errno != EPERM) return -errno;
    return 0;
}

int cshims_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int err = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) err = -errno;
    else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) err = -errno;
    }
    close(fd);
    return err;
}

static void cshims_init_sigterm(int sig) {
    (void)sig;
    kill(-1, SIGKILL);
    _exit(143);
}

int cshims_install_init_sigterm(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cshims_init_sigterm;
    sigfillset(&sa.sa_mask);
    return sigaction(SIGTERM, &sa, NULL) == 0 ? 0 : -errno;
}

int cshims_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int cshims_epoll_add(int epfd, int fd, int readable, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = readable ? EPOLLIN : EPOLLOUT;
    event.data.u64 = data;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

int cshims_epoll_del(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : -errno;
}

int cshims_epoll_wait(int epfd, uint64_t *data, int max) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, events, max, -1);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) data[i] = events[i].data.u64;
    return n;
}
