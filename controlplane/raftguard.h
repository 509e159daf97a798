/*
 * Guard around libraft 0.15's membership rollback (canonical/raft#250,
 * fixed upstream in 0.17): a follower that must drop an uncommitted
 * configuration entry re-reads the last committed configuration from its
 * log; when that entry was already compacted into a snapshot the lookup
 * returns NULL and the node dies with SIGSEGV. docs/raft.md has the story.
 *
 * The guard wraps the raft_io that raft_uv initialises: it keeps a copy of
 * the last committed configuration and, when an AppendEntries is about to
 * make raft roll back while the committed entry is gone from the log,
 * performs that rollback itself first (same effect: the configuration
 * becomes the committed one and nothing is uncommitted), so raft only
 * truncates. Loop thread only, like raft.
 */
#ifndef TVMW_CP_RAFTGUARD_H
#define TVMW_CP_RAFTGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <uv.h>

struct cp_raftguard {
    struct raft_io io; /* what raft_uv_init and raft_init are given */
    struct raft *raft;
    uv_loop_t *loop;
    bool closed; /* work finishing after this is not reported to raft */
    int (*uv_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
    int (*uv_load)(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries);
    raft_io_tick_cb tick;
    raft_io_recv_cb recv;
    struct raft_configuration committed; /* last committed configuration */
    raft_index committed_index;          /* its log index (0: none yet) */
    uint64_t rollbacks;                  /* rollbacks done by the guard */
};

/* Right after raft_uv_init(&g->io, loop, ...). Also gives the I/O what
 * libraft's asynchronous snapshots need (io version 2, async_work on
 * libuv's thread pool), which Debian's raft_uv lacks. */
void cp_raftguard_wrap(struct cp_raftguard *g, uv_loop_t *loop);
/* After raft_init(r, &g->io, ...), before raft_start. */
void cp_raftguard_attach(struct cp_raftguard *g, struct raft *r);
/* Right after raft_start: see raftguard.c. */
void cp_raftguard_started(struct cp_raftguard *g);
void cp_raftguard_close(struct cp_raftguard *g);

/* Exposed for the unit test: decode raft's configuration encoding. */
int cp_raftguard_decode(const void *buf, size_t len, struct raft_configuration *c);

#endif
