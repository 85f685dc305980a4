// The job's mount namespace (see include/CShims.h for why each function
// exists): glibc declares unshare and CLONE_NEWNS only under _GNU_SOURCE,
// and the mounts are made from C so that the flags are the kernel's own.
#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>

int cshims_unshare_mount_namespace(void) {
    if (unshare(CLONE_NEWNS) != 0) return -errno;
    return mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == 0 ? 0 : -errno;
}

int cshims_mount_tmpfs(const char *target, mode_t mode, unsigned size_kb) {
    char data[64];
    snprintf(data, sizeof data, "mode=%o,size=%uk", (unsigned)mode, size_kb);
    return mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, data) == 0 ? 0 : -errno;
}

int cshims_bind_fd(int fd, const char *target) {
    char source[64];
    snprintf(source, sizeof source, "/proc/self/fd/%d", fd);
    return mount(source, target, NULL, MS_BIND | MS_REC, NULL) == 0 ? 0 : -errno;
}

int cshims_mount_proc(const char *target) {
    return mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0 ? 0 : -errno;
}
