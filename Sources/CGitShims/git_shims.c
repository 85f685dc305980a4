// See include/CGitShims.h for why this exists.
#include "CGitShims.h"

int cshims_git_disable_owner_validation(void) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
}
