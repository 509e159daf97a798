/*
 * Decoding of the answers of GET /edge/v1/feed (docs/edge-protocol.md):
 * the JSON of a 200 into a batch of changes an edge applies in one
 * transaction, and the index it is at afterwards.
 *
 * The answer comes from the network: every field is type- and
 * range-checked, and an answer that breaks the protocol's promises is
 * refused as a whole (TVMW_EMALFORMED with a reason): a missing or
 * mistyped field, `after` other than the one asked for, a change index
 * not above `after`, going backwards, or above `last_index`, an incomplete answer without changes
 * (it would never make progress), an unknown op or database, bad base64, an empty or oversized key,
 * an oversized value, a put without a value.
 */
#ifndef TVMW_EDGE_FEED_H
#define TVMW_EDGE_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most a feed answer may weigh; the edge asks for EDGE_FEED_LIMIT
 * changes per answer, which stays far below this with real records. */
#define EDGE_FEED_MAX_BYTES (256u << 20)
#define EDGE_FEED_LIMIT     10000

struct edge_change {
    uint64_t index;
    unsigned db; /* EDGE_DB_MIN..EDGE_DB_MAX (proto.h) */
    bool del;
    const uint8_t *key; /* into the answer's bytes */
    size_t key_len;
    const uint8_t *value; /* put only; may be empty */
    size_t value_len;
};

struct edge_feed_answer {
    uint64_t after;
    uint64_t last_index;
    bool complete;
    size_t n_changes;
    struct edge_change *changes; /* owned */
    uint8_t *bytes;              /* owned; decoded keys and values */
};

/* Decodes a 200 answer to a request with after=`after`. On success fills
 * *out (release it with edge_feed_answer_close). On error writes a
 * reason into err and leaves *out empty (closing it is harmless). */
int edge_feed_decode(const char *body, size_t len, uint64_t after, struct edge_feed_answer *out,
                     char *err, size_t err_len);
void edge_feed_answer_close(struct edge_feed_answer *a);

/* The index the edge is at once `a` is applied: the node's last_index for
 * a complete answer (even if the last entries changed nothing projected),
 * else the index of the last change. Never below a->after: a node that is
 * behind the edge (last_index < after) moves it nowhere. */
uint64_t edge_feed_next_index(const struct edge_feed_answer *a);

/* The "last_index" member of any feed answer (200 or 410), for probes;
 * TVMW_EMALFORMED if absent. */
int edge_feed_last_index(const char *body, size_t len, uint64_t *out);

/* Strict base64 (RFC 4648 §4, standard alphabet, padding optional):
 * decodes src into dst (room for at least len / 4 * 3 + 2 bytes). Returns
 * 0 and the length in *out_len, or TVMW_EMALFORMED. */
int edge_base64_decode(const char *src, size_t len, uint8_t *dst, size_t *out_len);

#endif
