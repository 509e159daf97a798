/* What the fuzz target's sources reference but never reach: the store
 * (dauth.c loads key rings through it; the fuzzer builds its own). */
#include "common/err.h"
#include "edge/store.h"

int edge_store_scan(const struct edge_read *r, unsigned db, const void *prefix, size_t prefix_len,
                    const void *from, size_t from_len, edge_store_scan_cb cb, void *arg)
{
    (void)r;
    (void)db;
    (void)prefix;
    (void)prefix_len;
    (void)from;
    (void)from_len;
    (void)cb;
    (void)arg;
    return TVMW_ENOTFOUND;
}
