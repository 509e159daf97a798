/*
 * The edge's device-write journal: what devices did at this edge that the
 * control plane must keep (sessions, logouts, settings, last seen, ...),
 * written to disk first and delivered to POST /edge/v1/device-writes of
 * any control-plane node (docs/edge-protocol.md, "Device writes").
 *
 * Why a journal: an edge keeps serving devices while the whole control
 * plane is unreachable (DESIGN.md); what they do meanwhile must reach the
 * replicated state once a node answers again, also across a restart of
 * the edge. So an append returns only once the write is fsync'd into its
 * own LMDB environment, <data-dir>/journal — separate from the state
 * (edge/store.h), which is rebuildable and swapped wholesale; the journal
 * is neither.
 *
 * Bounded: at most conf->journal.max_writes writes wait; appends beyond
 * that fail with TVMW_EBUSY and are counted (dropped_total). FIFO.
 *
 * Delivery: one sender thread posts the oldest writes in batches (at most
 * EDGE_JOURNAL_BATCH_MAX writes, EDGE_JOURNAL_BATCH_MAX_BYTES of body)
 * with the admin bearer token, to one node of conf->nodes at a time. A
 * batch is removed once a node answers 200 with one result per write: a
 * per-write error is final (logged, counted in failed_total) — the
 * control plane applied nothing for it and never will. No answer, a 503,
 * any other status: the batch stays, the sender moves to the next node and
 * pauses, doubling from EDGE_JOURNAL_BACKOFF_MIN_MS to
 * EDGE_JOURNAL_BACKOFF_MAX_MS with jitter (a random half), reset by the
 * next success — as edge/follow.c does. A 400 or 413 for a whole batch
 * (a write the control plane cannot take at all) halves the batch until
 * the write at fault travels alone; alone, it is dropped as failed. A
 * batch may be delivered more than once (an answer lost on the way, a
 * crash before the removal); writes are harmless to replay by design, and
 * the batch's Idempotency-Key (a digest of its writes) makes a retry within
 * the control plane's dedup window answer with the first result.
 *
 * Threads: open, start, stop and close from one thread (the edge's main);
 * append, call and status from any thread. append blocks for an fsync,
 * shared by the appends that arrive meanwhile (group commit); call blocks
 * for a round trip. stop waits for a request in flight (at most
 * EDGE_JOURNAL_SEND_TIMEOUT_MS).
 */
#ifndef TVMW_EDGE_JOURNAL_H
#define TVMW_EDGE_JOURNAL_H

#include <stdint.h>

#include <jansson.h>

#include "common/config.h"

#define EDGE_JOURNAL_BATCH_MAX       1000         /* the control plane's limit per request */
#define EDGE_JOURNAL_BATCH_MAX_BYTES (512u << 10) /* below http.max_body_bytes' default */
#define EDGE_JOURNAL_WRITE_MAX_BYTES (256u << 10) /* one write, as JSON */
#define EDGE_JOURNAL_MAP_MB          4096         /* LMDB map (virtual) */
#define EDGE_JOURNAL_BACKOFF_MIN_MS  100
#define EDGE_JOURNAL_BACKOFF_MAX_MS  5000
#define EDGE_JOURNAL_SEND_TIMEOUT_MS 5000 /* one request; a retry is harmless */

struct edge_journal;

/* Opens (creating) <data_dir>/journal; the writes found there will be
 * sent. -errno or TVMW_ESTORE when it cannot be used: the edge must not
 * start then, or those writes would be lost. conf is kept (borrowed). */
int edge_journal_open(const char *data_dir, const struct tvmw_config *conf,
                      struct edge_journal **out);
/* Starts the sender thread. */
int edge_journal_start(struct edge_journal *j);
/* Stops the sender (what was not delivered stays for the next start).
 * Appends still work. No-op if not started. */
void edge_journal_stop(struct edge_journal *j);
/* Stops the sender if needed and closes. NULL is a no-op. */
void edge_journal_close(struct edge_journal *j);

/* Appends w (borrowed), a device write of docs/edge-protocol.md: "reqid"
 * (32 random lowercase hex) is added to w if absent. Durable when it
 * returns 0. TVMW_EBUSY when the journal is full (or its disk is),
 * TVMW_ETOOBIG above EDGE_JOURNAL_WRITE_MAX_BYTES, TVMW_EMALFORMED when w
 * is not an object, TVMW_ESTORE when LMDB failed. */
int edge_journal_append(struct edge_journal *j, json_t *w);

/* Sends w (borrowed; a copy gets a reqid if w has none) now, not
 * journaled, trying the nodes in turn until one answers or timeout_ms
 * passed, and returns its result R (a new reference) in *result. Retrying
 * is safe: creating writes are deduplicated by reqid. -ETIMEDOUT when the
 * nodes that answered only said "retry later" (503) until the deadline,
 * TVMW_EIO when none answered, TVMW_EMALFORMED when the control plane
 * refused w as malformed (400). */
int edge_journal_call(struct edge_journal *j, json_t *w, int timeout_ms, json_t **result);

struct edge_journal_status {
    uint64_t pending;        /* writes waiting */
    uint64_t appended_total; /* appends that succeeded, since open */
    uint64_t sent_total;     /* writes a node answered (applied or refused) */
    uint64_t failed_total;   /* of those, refused for good (a per-write error) */
    uint64_t dropped_total;  /* appends refused because the journal was full */
    uint64_t retries_total;  /* batches sent again (no answer, 503, ...) */
};

/* Counters for /metrics. Any thread. */
void edge_journal_status(struct edge_journal *j, struct edge_journal_status *st);

#endif
