/*
 * Playlist and guide exports for players (issue 7, shared/spec/exports.md):
 * routes outside the device API's prefix. See device_int.h (dexport_find).
 */
#include <stddef.h>
#include <string.h>

#include "edge/device_int.h"

dctx_handler_fn dexport_find(const char *path, const char **route_label)
{
    (void)path;
    *route_label = NULL;
    return NULL;
}
