/*
 * Streaming parser and verifier of an edge snapshot (docs/edge-protocol.md,
 * framing in edge/proto.h).
 *
 * The snapshot arrives in pieces of any size (libcurl's write callback);
 * the parser keeps only the record being assembled, so memory stays
 * bounded by EDGE_MAX_KEY_BYTES + EDGE_MAX_VALUE_BYTES whatever the size of
 * the state. Each complete record is handed to the record callback at
 * once — BEFORE the checksum at the end of the stream has been checked.
 * The callback must therefore write into something it can throw away
 * (edge/store.c loads into a new environment and swaps it in only after
 * edge_snapshot_parser_finish() returned 0).
 *
 * Refused, with TVMW_ECORRUPT and a one-line reason: a wrong magic or
 * version, non-zero reserved fields, an unknown tag, a database id outside
 * EDGE_DB_MIN..EDGE_DB_MAX, an empty or oversized key, an oversized value, a record count
 * that differs from the records seen, a SHA-256 mismatch, bytes after the
 * trailer, and a stream that ends anywhere before the end of the trailer.
 *
 * Errors are sticky: after the first one every call returns it. One
 * parser per stream, one thread at a time.
 */
#ifndef TVMW_EDGE_SNAPSHOT_H
#define TVMW_EDGE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* Called once per record, in stream order. key/value are borrowed for the
 * call. A non-zero return stops the parse; every later call then returns
 * that code. */
typedef int (*edge_snapshot_record_cb)(void *ctx, unsigned db, const uint8_t *key, size_t key_len,
                                       const uint8_t *value, size_t value_len);

struct edge_snapshot_parser;

/* 0, or -ENOMEM. */
int edge_snapshot_parser_new(edge_snapshot_record_cb cb, void *ctx,
                             struct edge_snapshot_parser **out);
/* NULL is a no-op. */
void edge_snapshot_parser_free(struct edge_snapshot_parser *p);

/* Consumes len bytes. 0, TVMW_ECORRUPT, -ENOMEM, or the callback's code. */
int edge_snapshot_parser_feed(struct edge_snapshot_parser *p, const void *data, size_t len);
/* The stream has ended: 0 only if it ended exactly after a valid trailer
 * (every record then has been delivered and verified); TVMW_ECORRUPT if
 * it was truncated; or the sticky error. */
int edge_snapshot_parser_finish(struct edge_snapshot_parser *p);

/* The index in the header (0 until the header has been read). */
uint64_t edge_snapshot_parser_index(const struct edge_snapshot_parser *p);
/* Records delivered so far; bytes consumed so far. */
uint64_t edge_snapshot_parser_records(const struct edge_snapshot_parser *p);
uint64_t edge_snapshot_parser_offset(const struct edge_snapshot_parser *p);
/* Why the parse failed ("" while it has not); valid until free. */
const char *edge_snapshot_parser_error(const struct edge_snapshot_parser *p);

#endif
