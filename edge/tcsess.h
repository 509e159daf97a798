/*
 * Live playback sessions per account, as the streamers report them to this
 * edge (streamer-auth.md §1.5 rule 5): the edge's own concurrent-session
 * limit, counted across every streamer that asks this edge.
 *
 * A fixed table allocated once: an account gets an entry (found within a
 * short probe run from its hash) of EDGE_TCS_SLOTS session slots, each
 * holding a session key (a hash of the streamer's session id) and when it
 * was last seen. Threads share it through atomics only (compare-and-swap
 * to claim entries and slots), never a lock, so any request thread may
 * use it.
 *
 * What it cannot do, by design: count sessions seen by other edges (each
 * edge counts what is asked of it; see docs/streamer-auth.md), remember
 * more than EDGE_TCS_SLOTS sessions of one account, or survive a restart
 * (sessions re-register on their next update). When the table or an
 * account's slots are full, a session is allowed untracked and counted.
 * Two sessions of one account racing for the last free place may both
 * be refused; never both admitted beyond the limit.
 */
#ifndef TVMW_EDGE_TCSESS_H
#define TVMW_EDGE_TCSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_TCS_SLOTS 16 /* sessions remembered per account; the highest limit enforced */
#define EDGE_TCS_PROBE 8  /* entries tried per account */

struct edge_tcs;

enum edge_tcs_result {
    EDGE_TCS_OK = 0,        /* admitted (or refreshed) and tracked */
    EDGE_TCS_OVER = 1,      /* a new session beyond the limit: refused */
    EDGE_TCS_UNTRACKED = 2, /* admitted, but no room to remember it */
};

/* A table of at least `accounts` entries (rounded up to a power of two).
 * -ENOMEM. */
int edge_tcs_new(size_t accounts, struct edge_tcs **out);
void edge_tcs_free(struct edge_tcs *t);

/* Records that session `key` (non-zero) of `account` was seen at now_s
 * (a monotonic second count). A session counts as live for live_s after
 * it was last seen. is_new: a session start, refused with EDGE_TCS_OVER
 * if `limit` other sessions are live (limit 0: none is refused); an
 * update is never refused. A session already known is refreshed and
 * admitted (a repeated start is the same session). Any thread. */
enum edge_tcs_result edge_tcs_touch(struct edge_tcs *t, uint64_t account, uint64_t key,
                                    uint32_t now_s, uint32_t live_s, unsigned limit, bool is_new);

/* Live sessions of account (tests, debugging). */
unsigned edge_tcs_count(struct edge_tcs *t, uint64_t account, uint32_t now_s, uint32_t live_s);

#endif
