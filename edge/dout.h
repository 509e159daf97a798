/*
 * The device API's answer writer: one sequence of calls produces either
 * compact JSON or the <rss> XML of shared/spec/device-api.md §1.1, with the
 * fields in the order they were written (clients parse by pattern, so the
 * order is part of the contract: §1.1a).
 *
 *   JSON  {"error":0,"channels":[{"id":1,"name":"A"}],"message":{}}
 *   XML   <?xml version="1.0" encoding="utf-8"?>
 *         <rss><error>0</error><channels><item><id>1</id><name>A</name></item>
 *         </channels><message/></rss>
 *
 * Inside a list, names are ignored (entries are <item> in XML). Booleans
 * are true/false in JSON and 1/0 in XML. Out of memory is remembered and
 * reported by dout_finish; the calls themselves never fail.
 */
#ifndef TVMW_EDGE_DOUT_H
#define TVMW_EDGE_DOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define DOUT_MAX_DEPTH     8
#define DOUT_INITIAL_BYTES (16u << 10) /* most answers fit; lists grow */

struct dout {
    struct tvmw_buf b;
    bool xml;
    bool failed;
    unsigned depth;
    bool first[DOUT_MAX_DEPTH];    /* JSON: nothing written yet at this level */
    bool list[DOUT_MAX_DEPTH];     /* this level is a list */
    size_t opened[DOUT_MAX_DEPTH]; /* XML: buffer length right after the open tag */
    const char *name[DOUT_MAX_DEPTH];
};

/* Starts the root object. */
void dout_init(struct dout *o, bool xml);
void dout_int(struct dout *o, const char *name, int64_t v);
void dout_bool(struct dout *o, const char *name, bool v);
void dout_num(struct dout *o, const char *name, double v);
/* NULL is written as "". */
void dout_str(struct dout *o, const char *name, const char *s);
void dout_obj_begin(struct dout *o, const char *name);
void dout_obj_end(struct dout *o);
void dout_list_begin(struct dout *o, const char *name);
void dout_list_end(struct dout *o);
/* An object entry of the current list. */
void dout_item_begin(struct dout *o);
void dout_item_end(struct dout *o);
/* Closes the root; the text is o->b.data / o->b.len. -1 if out of memory. */
int dout_finish(struct dout *o);
void dout_close(struct dout *o);

#endif
