/*
 * The membership-rollback guard described in raftguard.h. It reads
 * struct raft and struct raft_log, which libraft 0.15 publishes in raft.h,
 * and mirrors the checks libraft's replication code makes before it
 * truncates a follower's log (term, previous entry, first conflict).
 */
#include "controlplane/raftguard.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define GUARD_EXIT 70 /* EX_SOFTWARE: a restart reloads a consistent state */

static struct cp_raftguard *guard_of(struct raft_io *io)
{
    return (struct cp_raftguard *)((char *)io - offsetof(struct cp_raftguard, io));
}

static size_t log_count(const struct raft_log *l)
{
    return l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;
}

static const struct raft_entry *log_at(const struct raft_log *l, raft_index i)
{
    size_t n = log_count(l);
    if (i <= l->offset || i > l->offset + n) {
        return NULL;
    }
    return &l->entries[(l->front + (size_t)(i - l->offset - 1)) % l->size];
}

static raft_term term_of(const struct raft_log *l, raft_index i)
{
    if (i != 0 && i == l->snapshot.last_index) {
        return l->snapshot.last_term;
    }
    const struct raft_entry *e = log_at(l, i);
    return e != NULL ? e->term : 0;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* raft's encoding: version byte 1, u64 count, then per server u64 id,
 * NUL-terminated address, role byte (little endian, padded to 8). */
int cp_raftguard_decode(const void *buf, size_t len, struct raft_configuration *c)
{
    const unsigned char *p = buf, *end = p + len;
    if (len < 9 || p[0] != 1) {
        return RAFT_MALFORMED;
    }
    uint64_t n = get64(p + 1);
    p += 9;
    for (uint64_t k = 0; k < n; k++) {
        if (end - p < 8) {
            return RAFT_MALFORMED;
        }
        raft_id id = get64(p);
        p += 8;
        const unsigned char *nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL || end - nul < 2) {
            return RAFT_MALFORMED;
        }
        int rv = raft_configuration_add(c, id, (const char *)p, nul[1]);
        if (rv != 0) {
            return rv;
        }
        p = nul + 2;
    }
    return 0;
}

static int copy_configuration(const struct raft_configuration *from, struct raft_configuration *to)
{
    raft_configuration_init(to);
    for (unsigned i = 0; i < from->n; i++) {
        const struct raft_server *s = &from->servers[i];
        int rv = raft_configuration_add(to, s->id, s->address, s->role);
        if (rv != 0) {
            raft_configuration_close(to);
            raft_configuration_init(to);
            return rv;
        }
    }
    return 0;
}

static void set_committed(struct cp_raftguard *g, const struct raft_configuration *c, raft_index i)
{
    struct raft_configuration copy;
    if (copy_configuration(c, &copy) != 0) {
        return; /* out of memory: keep the older copy, retry next time */
    }
    raft_configuration_close(&g->committed);
    g->committed = copy;
    g->committed_index = i;
}

/* Keep the copy of the committed configuration current: raft's own
 * configuration is the committed one whenever nothing is uncommitted;
 * otherwise the committed entry may still be in the log. */
static void refresh(struct cp_raftguard *g)
{
    struct raft *r = g->raft;
    if (r->configuration_index == 0 || r->configuration_index == g->committed_index) {
        return;
    }
    if (r->configuration_uncommitted_index == 0) {
        set_committed(g, &r->configuration, r->configuration_index);
        return;
    }
    const struct raft_entry *e = log_at(&r->log, r->configuration_index);
    if (e != NULL && e->type == RAFT_CHANGE) {
        struct raft_configuration c;
        raft_configuration_init(&c);
        if (cp_raftguard_decode(e->buf.base, e->buf.len, &c) == 0) {
            set_committed(g, &c, r->configuration_index);
        }
        raft_configuration_close(&c);
    }
}

/* Would raft, handling this AppendEntries, truncate the uncommitted
 * configuration entry? The same checks, in the same order, as 0.15's
 * replicationAppend: stale term and a mismatch at prev_log_index reject
 * the message; otherwise the first entry whose term differs from ours is
 * where the log is cut. */
static bool truncates_uncommitted(const struct raft *r, const struct raft_append_entries *ae)
{
    const struct raft_log *l = &r->log;
    if (ae->term < r->current_term) {
        return false;
    }
    if (ae->prev_log_index > 0 && term_of(l, ae->prev_log_index) != ae->prev_log_term) {
        return false;
    }
    for (unsigned j = 0; j < ae->n_entries; j++) {
        raft_index i = ae->prev_log_index + 1 + j;
        raft_term local = term_of(l, i);
        if (local == 0) {
            return false;
        }
        if (local != ae->entries[j].term) {
            return i <= r->configuration_uncommitted_index;
        }
    }
    return false;
}

static void before_append(struct cp_raftguard *g, const struct raft_append_entries *ae)
{
    struct raft *r = g->raft;
    if (r->configuration_uncommitted_index == 0 ||
        log_at(&r->log, r->configuration_index) != NULL || !truncates_uncommitted(r, ae)) {
        return; /* nothing to roll back, or raft can do it */
    }
    if (g->committed_index != r->configuration_index) {
        /* Neither the log nor the copy has it: libraft would crash. Exit
         * instead; a restart rebuilds the configuration from disk. */
        TVMW_LOG_ERROR("raft",
                       "must roll back configuration %llu to %llu, which is neither in the log "
                       "nor known; restarting the node",
                       (unsigned long long)r->configuration_uncommitted_index,
                       (unsigned long long)r->configuration_index);
        _exit(GUARD_EXIT);
    }
    struct raft_configuration c;
    if (copy_configuration(&g->committed, &c) != 0) {
        TVMW_LOG_ERROR("raft", "out of memory rolling back the configuration; exiting");
        _exit(GUARD_EXIT);
    }
    TVMW_LOG_WARN("raft",
                  "rolled back uncommitted configuration at %llu to the committed one at %llu "
                  "(%u servers; compacted out of the log)",
                  (unsigned long long)r->configuration_uncommitted_index,
                  (unsigned long long)r->configuration_index, c.n);
    raft_configuration_close(&r->configuration);
    r->configuration = c;
    r->configuration_uncommitted_index = 0;
    g->rollbacks++;
}

static void guard_recv(struct raft_io *io, struct raft_message *m)
{
    struct cp_raftguard *g = guard_of(io);
    refresh(g);
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        before_append(g, &m->append_entries);
    }
    g->recv(io, m);
    refresh(g);
}

static void guard_tick(struct raft_io *io)
{
    struct cp_raftguard *g = guard_of(io);
    g->tick(io);
    refresh(g);
}

/* Remembers the configuration of the snapshot raft starts from: after a
 * restart it is the committed one if no later entry changed it. */
static int guard_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                      struct raft_snapshot **snapshot, raft_index *start_index,
                      struct raft_entry *entries[], size_t *n_entries)
{
    struct cp_raftguard *g = guard_of(io);
    int rv = g->uv_load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rv == 0 && *snapshot != NULL && (*snapshot)->configuration_index != 0) {
        set_committed(g, &(*snapshot)->configuration, (*snapshot)->configuration_index);
    }
    return rv;
}

static int guard_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct cp_raftguard *g = guard_of(io);
    g->tick = tick;
    g->recv = recv;
    return g->uv_start(io, msecs, guard_tick, guard_recv);
}

struct guard_work {
    uv_work_t w;
    struct cp_raftguard *g;
    struct raft_io_async_work *req;
    raft_io_async_work_cb cb;
    int status;
};

static void work_run(uv_work_t *w)
{
    struct guard_work *x = w->data;
    x->status = x->req->work(x->req);
}

static void work_done(uv_work_t *w, int status)
{
    struct guard_work *x = w->data;
    if (!x->g->closed) {
        x->cb(x->req, status != 0 ? RAFT_CANCELED : x->status);
    }
    free(x);
}

static int guard_async_work(struct raft_io *io, struct raft_io_async_work *req,
                            raft_io_async_work_cb cb)
{
    struct cp_raftguard *g = guard_of(io);
    struct guard_work *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return RAFT_NOMEM;
    }
    x->g = g;
    x->req = req;
    x->cb = cb;
    x->w.data = x;
    if (uv_queue_work(g->loop, &x->w, work_run, work_done) != 0) {
        free(x);
        return RAFT_IOERR;
    }
    return 0;
}

void cp_raftguard_wrap(struct cp_raftguard *g, uv_loop_t *loop)
{
    g->loop = loop;
    g->closed = false;
    raft_configuration_init(&g->committed);
    g->committed_index = 0;
    g->uv_start = g->io.start;
    g->io.start = guard_start;
    g->uv_load = g->io.load;
    g->io.load = guard_load;
    g->io.version = 2;
    g->io.async_work = guard_async_work;
}

void cp_raftguard_attach(struct cp_raftguard *g, struct raft *r)
{
    g->raft = r;
}

/* libraft 0.15 starts with the last configuration entry of its log taken
 * as committed, though nothing on disk says so; if it was not, and the
 * leader overwrites it, the node keeps a configuration the cluster never
 * agreed on (a removed member that is not removed, say). Like later
 * libraft releases, treat an entry past the snapshot as uncommitted: the
 * previous configuration (an earlier entry or the snapshot's) is the
 * committed one, and raft marks the entry committed when it applies it. */
void cp_raftguard_started(struct cp_raftguard *g)
{
    struct raft *r = g->raft;
    raft_index x = r->configuration_index;
    if (x <= 1 || r->configuration_uncommitted_index != 0 || log_at(&r->log, x) == NULL ||
        x <= r->log.snapshot.last_index) {
        refresh(g);
        return;
    }
    raft_index p = 0;
    struct raft_configuration prev;
    raft_configuration_init(&prev);
    raft_index i = x - 1;
    while (i > r->log.offset && log_at(&r->log, i)->type != RAFT_CHANGE) {
        i--;
    }
    if (i > r->log.offset) {
        const struct raft_entry *e = log_at(&r->log, i);
        if (cp_raftguard_decode(e->buf.base, e->buf.len, &prev) == 0) {
            set_committed(g, &prev, i);
            p = i;
        }
    } else if (g->committed_index != 0 && g->committed_index < x) {
        p = g->committed_index; /* the snapshot's, from guard_load */
    }
    raft_configuration_close(&prev);
    if (p == 0) {
        TVMW_LOG_WARN("raft",
                      "configuration at %llu may be uncommitted but no earlier one is known",
                      (unsigned long long)x);
        return;
    }
    TVMW_LOG_INFO("raft",
                  "configuration at %llu treated as uncommitted until applied; committed "
                  "one at %llu",
                  (unsigned long long)x, (unsigned long long)p);
    r->configuration_index = p;
    r->configuration_uncommitted_index = x;
}

void cp_raftguard_close(struct cp_raftguard *g)
{
    g->closed = true;
    raft_configuration_close(&g->committed);
    raft_configuration_init(&g->committed);
    g->committed_index = 0;
}
