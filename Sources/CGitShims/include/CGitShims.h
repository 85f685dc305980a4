// CGitShims: typed wrappers for libgit2's variadic git_libgit2_opts, which
// Swift cannot call. A target of its own so that only the job child
// (Publishing) links libgit2; the supervisor stays free of it.
#ifndef CGITSHIMS_H
#define CGITSHIMS_H

#include <git2.h>

/// Turns off libgit2's repository-ownership check: the runner's workspaces and
/// local remotes may belong to another uid (JOB_UID_RANGE) by design.
int cshims_git_disable_owner_validation(void);

/// Empties libgit2's search path for the system, XDG and global config
/// levels: only the repository's own .git/config is read. HOME is the job's
/// home/, which the agent can write; a planted ~/.gitconfig
/// (url.*.insteadOf, pushInsteadOf) could otherwise redirect the push, and
/// the token with it. 0 or a libgit2 error code.
int cshims_git_ignore_user_config(void);

/// Adds an in-memory object database (libgit2's mempack) to `repo`, above its
/// loose and pack backends: objects written from now on (blobs, trees,
/// commits) stay in memory instead of one loose file each. The repository's
/// odb owns the backend; `*out` is for `cshims_git_mempack_persist`. 0 or a
/// libgit2 error code.
int cshims_git_add_mempack(git_repository *repo, git_odb_backend **out);

/// Writes every object held in `mempack` into `repo` as one packfile (its
/// .pack and .idx), then empties the mempack. 0 or a libgit2 error code.
int cshims_git_mempack_persist(git_repository *repo, git_odb_backend *mempack);

#endif
