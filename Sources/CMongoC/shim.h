#include <mongoc/mongoc.h>

/// Whether `iter` stopped on corrupt BSON rather than at the document's end
/// (libbson's BSON_ITER_HOLDS_* style: a field Swift cannot read, because
/// bson_iter_t is aligned to 128 bytes and Swift imports it as opaque).
static inline bool cmongoc_bson_iter_failed(const bson_iter_t *iter) { return iter->err_off != 0; }
