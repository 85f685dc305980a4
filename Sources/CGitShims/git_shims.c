// See include/CGitShims.h for why this exists.
#include "CGitShims.h"

int cshims_git_disable_owner_validation(void) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
}

int cshims_git_ignore_user_config(void) {
    const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
                          GIT_CONFIG_LEVEL_PROGRAMDATA};
    for (unsigned i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        int rc = git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
        if (rc != 0) return rc;
    }
    return 0;
}

#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>

int cshims_git_add_mempack(git_repository *repo, git_odb_backend **out) {
    git_odb *odb = NULL;
    git_odb_backend *mempack = NULL;
    int rc = git_repository_odb(&odb, repo);
    if (rc != 0) return rc;
    rc = git_mempack_new(&mempack);
    if (rc == 0) {
        // Above the loose (1) and pack (2) backends: every new object goes here.
        rc = git_odb_add_backend(odb, mempack, 999);
        if (rc != 0) mempack->free(mempack);
    }
    git_odb_free(odb);
    if (rc == 0) *out = mempack;
    return rc;
}

int cshims_git_mempack_persist(git_repository *repo, git_odb_backend *mempack) {
    git_buf pack = GIT_BUF_INIT;
    int rc = git_mempack_dump(&pack, repo, mempack);
    if (rc == 0 && pack.size > 0) {
        git_odb *odb = NULL;
        git_odb_writepack *writer = NULL;
        git_indexer_progress stats = {0};
        rc = git_repository_odb(&odb, repo);
        if (rc == 0) rc = git_odb_write_pack(&writer, odb, NULL, NULL);
        if (rc == 0) rc = writer->append(writer, pack.ptr, pack.size, &stats);
        if (rc == 0) rc = writer->commit(writer, &stats);
        if (writer != NULL) writer->free(writer);
        git_odb_free(odb);
    }
    git_buf_dispose(&pack);
    if (rc == 0) rc = git_mempack_reset(mempack);
    return rc;
}
