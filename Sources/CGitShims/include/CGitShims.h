// CGitShims: typed wrappers for libgit2's variadic git_libgit2_opts, which
// Swift cannot call. A target of its own so that only the job child
// (Publishing) links libgit2; the supervisor stays free of it.
#ifndef CGITSHIMS_H
#define CGITSHIMS_H

#include <git2.h>

/// Turns off libgit2's repository-ownership check: the runner's workspaces and
/// local remotes may belong to another uid (JOB_UID_RANGE) by design.
int cshims_git_disable_owner_validation(void);

#endif
