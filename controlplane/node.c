/*
 * Control-plane node: raft + FSM on one libuv loop, and the operation queue
 * through which HTTP threads reach it. The contract is in node.h.
 */
#include "controlplane/node.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controlplane/raftguard.h"

#define TICK_MS 50

enum op_kind { OP_WRITE, OP_READ, OP_CHANGE };

struct cp_op {
    enum op_kind kind;
    /* input */
    void *cmd; /* OP_WRITE: encoded command, raft_malloc'd */
    size_t cmd_len;
    uint8_t reqid[CP_REQID_SIZE];
    enum cp_change change;
    uint64_t member_id;
    char address[64];
    uint64_t deadline_ns;
    /* output */
    int rv;
    struct cp_result *res;
    uint64_t leader_id;
    char msg[160];
    /* hand-off: mu guards done and refs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int refs;
    /* loop side */
    struct cp_op *next;
    uint64_t index;
    int step;
    int ready_rv;
    uint64_t started_ns;
    struct cp_node *node;
    struct raft_change change_req;
    struct raft_transfer transfer_req;
};

struct read_batch {
    struct raft_barrier req;
    struct cp_node *node;
    struct cp_op *ops;
    uint64_t started_ns;
};

struct cp_node {
    const struct tvmw_config *conf;
    uint64_t id;
    char raft_address[64];
    char raft_dir[600];
    struct cp_fsm *fsm;

    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    struct raft raft;
    struct cp_raftguard guard; /* wraps the raft_uv io (raftguard.h) */
    struct raft_uv_transport transport;
    struct raft_fsm raft_fsm;

    /* qmu guards queue_head/queue_tail/stopping */
    pthread_mutex_t qmu;
    struct cp_op *queue_head, *queue_tail;
    bool stopping;

    /* loop thread only */
    bool closing;
    struct cp_op *pending;   /* writes proposed, waiting for their index */
    struct cp_op *ready;     /* writes decided, answered after the next flush */
    uv_check_t flush_check;  /* flushes the FSM once per loop iteration */
    struct cp_op *read_wait; /* reads waiting for the next barrier */
    struct read_batch *read_inflight;
    struct cp_op *change_inflight;
    struct raft_barrier elect_req;
    bool elect_inflight;
    uint64_t ready_term;
    bool unsafe_ack;
    uint64_t last_leader;
    uint64_t last_term;

    /* smu guards status; applied_cv is signalled when applied_index moves */
    pthread_mutex_t smu;
    pthread_cond_t applied_cv;
    struct cp_status status;
    bool stopping_status; /* under smu: wakes long polls at shutdown */

    struct cp_fsm_snap *snap; /* the snapshot being taken (loop thread, then a worker) */
    uint64_t snap_t0;
    struct tvmw_hist apply_hist;
    struct tvmw_hist write_hist;
    struct tvmw_hist barrier_hist;
};

/* ---- operations --------------------------------------------------------- */

static struct cp_op *op_new(enum op_kind kind, unsigned timeout_ms)
{
    struct cp_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return NULL;
    }
    op->kind = kind;
    op->refs = 2; /* the waiting thread and the loop */
    op->started_ns = tvmw_now_ns();
    op->deadline_ns = op->started_ns + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_init(&op->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&op->cv, &ca);
    pthread_condattr_destroy(&ca);
    return op;
}

static void op_unref(struct cp_op *op)
{
    pthread_mutex_lock(&op->mu);
    int left = --op->refs;
    pthread_mutex_unlock(&op->mu);
    if (left > 0) {
        return;
    }
    if (op->cmd != NULL) {
        raft_free(op->cmd);
    }
    cp_result_free(op->res);
    pthread_cond_destroy(&op->cv);
    pthread_mutex_destroy(&op->mu);
    free(op);
}

/* Loop side: publishes the outcome and drops the loop's reference. */
static void op_complete(struct cp_op *op, int rv)
{
    pthread_mutex_lock(&op->mu);
    op->rv = rv;
    op->done = true;
    pthread_cond_signal(&op->cv);
    pthread_mutex_unlock(&op->mu);
    op_unref(op);
}

static void op_complete_notleader(struct cp_node *n, struct cp_op *op)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &id, &addr);
    op->leader_id = id == n->id ? 0 : id;
    op_complete(op, TVMW_ENOTLEADER);
}

/* Thread side: queue, wake the loop, wait. Returns the op's rv, or
 * TVMW_EUNKNOWN on timeout. The op is released either way. */
static int op_submit_wait(struct cp_node *n, struct cp_op *op, struct cp_result **res,
                          uint64_t *leader_id)
{
    pthread_mutex_lock(&n->qmu);
    if (n->stopping) {
        pthread_mutex_unlock(&n->qmu);
        op->refs = 1;
        op_unref(op);
        return TVMW_ESHUTDOWN;
    }
    if (n->queue_tail != NULL) {
        n->queue_tail->next = op;
    } else {
        n->queue_head = op;
    }
    n->queue_tail = op;
    pthread_mutex_unlock(&n->qmu);
    uv_async_send(&n->async);

    struct timespec ts = {.tv_sec = (time_t)(op->deadline_ns / 1000000000u),
                          .tv_nsec = (long)(op->deadline_ns % 1000000000u)};
    int rv = TVMW_EUNKNOWN;
    pthread_mutex_lock(&op->mu);
    while (!op->done) {
        if (pthread_cond_timedwait(&op->cv, &op->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (op->done) {
        rv = op->rv;
        if (res != NULL) {
            *res = op->res;
            op->res = NULL;
        }
        if (leader_id != NULL) {
            *leader_id = op->leader_id;
        }
    }
    pthread_mutex_unlock(&op->mu);
    op_unref(op);
    return rv;
}

static void list_push(struct cp_op **head, struct cp_op *op)
{
    op->next = *head;
    *head = op;
}

/* ---- publishing status -------------------------------------------------- */

static void flush_and_release(struct cp_node *n);

static void publish_status(struct cp_node *n)
{
    flush_and_release(n);
    struct cp_status *s = &n->status;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &leader, &addr);
    int state = raft_state(&n->raft);
    uint64_t term = n->raft.current_term;
    if (leader != n->last_leader || term != n->last_term) {
        if (leader != 0 && leader != n->last_leader) {
            TVMW_LOG_INFO("raft", "leader is now %llu term=%llu", (unsigned long long)leader,
                          (unsigned long long)term);
        }
        n->last_leader = leader;
        n->last_term = term;
    }
    pthread_mutex_lock(&n->smu);
    if (leader != 0 && leader != s->leader_id) {
        s->leader_changes++;
    }
    s->state = state;
    s->leader_id = leader;
    s->term = term;
    s->commit_index = n->raft.commit_index;
    s->applied_index = raft_last_applied(&n->raft); /* flushed just above */
    s->last_index = raft_last_index(&n->raft);
    s->config_rollbacks = n->guard.rollbacks;
    cp_fsm_usage(n->fsm, &s->state_used_bytes, &s->state_map_bytes);
    s->ready =
        (state == RAFT_LEADER && n->ready_term == term) || (state == RAFT_FOLLOWER && leader != 0);
    unsigned m = 0;
    for (unsigned i = 0; i < n->raft.configuration.n && m < CP_MAX_MEMBERS; i++) {
        const struct raft_server *srv = &n->raft.configuration.servers[i];
        s->members[m].id = srv->id;
        snprintf(s->members[m].raft_address, sizeof(s->members[m].raft_address), "%s",
                 srv->address);
        s->members[m].role = srv->role;
        m++;
    }
    s->n_members = m;
    pthread_mutex_unlock(&n->smu);
}

/* ---- writes ------------------------------------------------------------- */

static void on_applied_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    (void)status; /* outcomes come from the FSM hook, see node.h */
    free(req);
}

static void start_write(struct cp_node *n, struct cp_op *op)
{
    if (raft_state(&n->raft) != RAFT_LEADER) {
        op_complete_notleader(n, op);
        return;
    }
    struct raft_apply *req = malloc(sizeof(*req));
    if (req == NULL) {
        op_complete(op, -ENOMEM);
        return;
    }
    struct raft_buffer buf = {.base = op->cmd, .len = op->cmd_len};
    int rv = raft_apply(&n->raft, req, &buf, 1, on_applied_cb);
    if (rv != 0) {
        free(req);
        if (rv == RAFT_NOTLEADER) {
            op_complete_notleader(n, op); /* not appended: safe to forward */
        } else {
            snprintf(op->msg, sizeof(op->msg), "%s", raft_strerror(rv));
            op_complete(op, rv == RAFT_TOOBIG ? TVMW_ETOOBIG : TVMW_ERAFT);
        }
        return;
    }
    op->cmd = NULL; /* raft owns the buffer now */
    op->index = raft_last_index(&n->raft);
    if (n->unsafe_ack) {
        /* Deliberately wrong (node.h): success before the entry commits. */
        static const char fake[] = "{\"error\":0,\"error_message\":\"\",\"unsafe\":true}";
        op->res = cp_result_new(200, fake, sizeof(fake) - 1);
        op_complete(op, 0);
        return;
    }
    list_push(&n->pending, op);
}

/* Called for every applied entry: answers the write that proposed it and
 * tells writes whose index was taken by another entry that they were
 * dropped. Takes ownership of res. */
static void resolve_pending(struct cp_node *n, uint64_t index, const uint8_t *reqid,
                            struct cp_result *res)
{
    struct cp_op **pp = &n->pending;
    while (*pp != NULL) {
        struct cp_op *op = *pp;
        int rv = 1;
        if (res != NULL && memcmp(op->reqid, reqid, CP_REQID_SIZE) == 0) {
            op->res = res;
            res = cp_result_new(res->status, res->body, res->len); /* for a twin */
            rv = 0;
        } else if (op->index != 0 && op->index <= index) {
            rv = TVMW_ENOTAPPLIED;
        }
        if (rv == 1) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        /* Answered after the flush: the entry is not visible to readers
         * (nor durable in LMDB) before its transaction commits. */
        op->ready_rv = rv;
        list_push(&n->ready, op);
    }
    cp_result_free(res);
}

/* The state could not take an entry (MDB_MAP_FULL, a disk error): the node
 * stops at once. Carrying on would skip the entry here while the other
 * replicas apply it, and a node that diverged must not vote or lead. Its
 * LMDB still holds the last committed batch and raft's log the rest, so a
 * restart once the cause is fixed (state.map_size_mb, disk space) replays
 * from there. */
static void store_failed(struct cp_node *n, const char *what, uint64_t index, int rv)
{
    uint64_t used, size;
    cp_fsm_usage(n->fsm, &used, &size);
    TVMW_LOG_ERROR("fsm",
                   "%s failed at index %llu: %s (state uses %llu of %llu MiB); stopping the "
                   "node: fix the cause (state.map_size_mb, disk) and restart it",
                   what, (unsigned long long)index, tvmw_strerror(rv),
                   (unsigned long long)(used >> 20), (unsigned long long)(size >> 20));
    _exit(CP_EXIT_STORE_FAILED);
}

/* Commits what was applied and answers whoever waited for it: writes,
 * long polls of the edge feed, /healthz. Loop thread. */
static void flush_and_release(struct cp_node *n)
{
    int rv = cp_fsm_flush(n->fsm);
    if (rv != 0) {
        store_failed(n, "commit", raft_last_applied(&n->raft), rv);
    }
    uint64_t applied = raft_last_applied(&n->raft); /* all of it is committed now */
    pthread_mutex_lock(&n->smu);
    if (applied > n->status.applied_index) {
        n->status.applied_index = applied;
        if (n->raft.commit_index > n->status.commit_index) {
            n->status.commit_index = n->raft.commit_index;
        }
        pthread_cond_broadcast(&n->applied_cv); /* edge feed long polls */
    }
    pthread_mutex_unlock(&n->smu);
    while (n->ready != NULL) {
        struct cp_op *op = n->ready;
        n->ready = op->next;
        if (op->ready_rv == 0) {
            tvmw_hist_observe_ns(&n->write_hist, tvmw_now_ns() - op->started_ns);
        }
        op_complete(op, op->ready_rv);
    }
}

static void on_flush_check(uv_check_t *h)
{
    flush_and_release(h->data);
}

static void expire_pending(struct cp_node *n, uint64_t now)
{
    struct cp_op **pp = &n->pending;
    while (*pp != NULL) {
        struct cp_op *op = *pp;
        if (now < op->deadline_ns) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        pthread_mutex_lock(&n->smu);
        n->status.writes_unknown++;
        pthread_mutex_unlock(&n->smu);
        op_complete(op, TVMW_EUNKNOWN);
    }
}

/* ---- reads -------------------------------------------------------------- */

static void maybe_start_barrier(struct cp_node *n);

static void on_read_barrier(struct raft_barrier *req, int status)
{
    struct read_batch *b = req->data;
    struct cp_node *n = b->node;
    n->read_inflight = NULL;
    flush_and_release(n); /* the reads must see everything applied so far */
    tvmw_hist_observe_ns(&n->barrier_hist, tvmw_now_ns() - b->started_ns);
    while (b->ops != NULL) {
        struct cp_op *op = b->ops;
        b->ops = op->next;
        if (status == 0) {
            op_complete(op, 0);
        } else {
            op_complete_notleader(n, op);
        }
    }
    free(b);
    /* Never call into raft from a failed barrier's callback: it runs while
     * raft steps down, with its replication state already freed (a
     * raft_barrier there crashed the node under the fault-injection suite).
     * Reads still waiting are answered by the next tick. */
    if (!n->closing && status == 0) {
        maybe_start_barrier(n);
    }
}

static void maybe_start_barrier(struct cp_node *n)
{
    if (n->read_inflight != NULL || n->read_wait == NULL) {
        return;
    }
    struct read_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return; /* retried on the next tick */
    }
    b->node = n;
    b->ops = n->read_wait;
    b->req.data = b;
    b->started_ns = tvmw_now_ns();
    n->read_wait = NULL;
    int rv = raft_barrier(&n->raft, &b->req, on_read_barrier);
    if (rv != 0) {
        n->read_inflight = NULL;
        while (b->ops != NULL) {
            struct cp_op *op = b->ops;
            b->ops = op->next;
            op_complete_notleader(n, op);
        }
        free(b);
        return;
    }
    n->read_inflight = b;
    pthread_mutex_lock(&n->smu);
    n->status.barriers++;
    pthread_mutex_unlock(&n->smu);
}

static void start_read(struct cp_node *n, struct cp_op *op)
{
    if (raft_state(&n->raft) != RAFT_LEADER) {
        op_complete_notleader(n, op);
        return;
    }
    /* One barrier serves every read queued before it was issued; reads that
     * arrive while it runs wait for the next one. */
    list_push(&n->read_wait, op);
    maybe_start_barrier(n);
}

static void expire_reads(struct cp_node *n, uint64_t now)
{
    struct cp_op **pp = &n->read_wait;
    while (*pp != NULL) {
        struct cp_op *op = *pp;
        if (now < op->deadline_ns && raft_state(&n->raft) == RAFT_LEADER) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        if (now >= op->deadline_ns) {
            op_complete(op, TVMW_EUNKNOWN);
        } else {
            op_complete_notleader(n, op);
        }
    }
    maybe_start_barrier(n);
}

/* 0.15 appends no entry when a leader is elected, so it cannot know which
 * entries are committed until an entry of its own term commits (Raft
 * §5.4.2). Until this barrier applies, the node reports not ready. */
static void on_elect_barrier(struct raft_barrier *req, int status)
{
    struct cp_node *n = req->data;
    n->elect_inflight = false;
    if (status == 0) {
        n->ready_term = n->raft.current_term;
        TVMW_LOG_INFO("raft", "leader ready term=%llu applied=%llu",
                      (unsigned long long)n->ready_term,
                      (unsigned long long)raft_last_applied(&n->raft));
    }
}

static void maybe_elect_barrier(struct cp_node *n)
{
    if (n->closing || n->elect_inflight || raft_state(&n->raft) != RAFT_LEADER ||
        n->ready_term == n->raft.current_term) {
        return;
    }
    n->elect_req.data = n;
    if (raft_barrier(&n->raft, &n->elect_req, on_elect_barrier) == 0) {
        n->elect_inflight = true;
    }
}

/* ---- membership --------------------------------------------------------- */

static int err_from_raft(struct cp_node *n, struct cp_op *op, int rv)
{
    snprintf(op->msg, sizeof(op->msg), "%s", raft_errmsg(&n->raft));
    if (op->msg[0] == '\0') {
        snprintf(op->msg, sizeof(op->msg), "%s", raft_strerror(rv));
    }
    switch (rv) {
    case RAFT_NOTLEADER:
        return TVMW_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return TVMW_EUNKNOWN;
    case RAFT_CANTCHANGE:
        return TVMW_EBUSY;
    case RAFT_SHUTDOWN:
        return TVMW_ESHUTDOWN;
    default:
        return TVMW_ERAFT;
    }
}

static void finish_change(struct cp_node *n, struct cp_op *op, int rv)
{
    n->change_inflight = NULL;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &id, &addr);
    op->leader_id = id;
    if (rv == 0) {
        TVMW_LOG_INFO("raft", "membership change done kind=%d member=%llu leader=%llu",
                      (int)op->change, (unsigned long long)op->member_id, (unsigned long long)id);
    } else {
        TVMW_LOG_WARN("raft", "membership change failed kind=%d member=%llu: %s", (int)op->change,
                      (unsigned long long)op->member_id, op->msg);
    }
    publish_status(n);
    op_complete(op, rv);
}

static void on_change(struct raft_change *req, int status)
{
    struct cp_op *op = req->data;
    struct cp_node *n = op->node;
    if (status != 0) {
        finish_change(n, op, err_from_raft(n, op, status));
        return;
    }
    if (op->change == CP_CHANGE_ADD && op->step == 1) {
        /* Spare -> standby: it now receives the log but has no vote. */
        op->step = 2;
        int rv = raft_assign(&n->raft, &op->change_req, op->member_id, RAFT_STANDBY, on_change);
        if (rv != 0) {
            finish_change(n, op, err_from_raft(n, op, rv));
        }
        return;
    }
    finish_change(n, op, 0);
}

static void on_transfer(struct raft_transfer *req)
{
    struct cp_op *op = req->data;
    finish_change(op->node, op, 0);
}

static void start_change(struct cp_node *n, struct cp_op *op)
{
    int rv;
    if (raft_state(&n->raft) != RAFT_LEADER) {
        op_complete_notleader(n, op);
        return;
    }
    if (n->change_inflight != NULL) {
        snprintf(op->msg, sizeof(op->msg), "another membership change is in progress");
        op_complete(op, TVMW_EBUSY);
        return;
    }
    op->node = n;
    op->change_req.data = op;
    op->transfer_req.data = op;
    op->step = 1;
    switch (op->change) {
    case CP_CHANGE_ADD:
        rv = raft_add(&n->raft, &op->change_req, op->member_id, op->address, on_change);
        break;
    case CP_CHANGE_PROMOTE:
        rv = raft_assign(&n->raft, &op->change_req, op->member_id, RAFT_VOTER, on_change);
        break;
    case CP_CHANGE_REMOVE:
        rv = raft_remove(&n->raft, &op->change_req, op->member_id, on_change);
        break;
    default:
        rv = raft_transfer(&n->raft, &op->transfer_req, op->member_id, on_transfer);
        break;
    }
    if (rv != 0) {
        op_complete(op, err_from_raft(n, op, rv));
        return;
    }
    n->change_inflight = op;
    TVMW_LOG_INFO("raft", "membership change started kind=%d member=%llu", (int)op->change,
                  (unsigned long long)op->member_id);
}

/* ---- loop plumbing -------------------------------------------------------- */

static void begin_close(struct cp_node *n);

static void on_async(uv_async_t *h)
{
    struct cp_node *n = h->data;
    pthread_mutex_lock(&n->qmu);
    struct cp_op *op = n->queue_head;
    n->queue_head = n->queue_tail = NULL;
    bool stopping = n->stopping;
    pthread_mutex_unlock(&n->qmu);
    while (op != NULL) {
        struct cp_op *next = op->next;
        op->next = NULL;
        if (n->closing) {
            op_complete(op, TVMW_ESHUTDOWN);
        } else if (op->kind == OP_WRITE) {
            start_write(n, op);
        } else if (op->kind == OP_READ) {
            start_read(n, op);
        } else {
            start_change(n, op);
        }
        op = next;
    }
    if (stopping && !n->closing) {
        begin_close(n);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct cp_node *n = t->data;
    uint64_t now = tvmw_now_ns();
    publish_status(n);
    maybe_elect_barrier(n);
    expire_pending(n, now);
    expire_reads(n, now);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct cp_node *n = s->data;
    TVMW_LOG_INFO("node", "signal %d: shutting down", signum);
    cp_node_stop(n);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_raft_closed(struct raft *r)
{
    struct cp_node *n = r->data;
    raft_uv_close(&n->guard.io);
    cp_raftguard_close(&n->guard);
    raft_uv_tcp_close(&n->transport);
    uv_close((uv_handle_t *)&n->async, on_handle_closed);
    uv_close((uv_handle_t *)&n->tick, on_handle_closed);
    uv_close((uv_handle_t *)&n->flush_check, on_handle_closed);
    uv_close((uv_handle_t *)&n->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
    TVMW_LOG_INFO("raft", "closed");
}

static void begin_close(struct cp_node *n)
{
    flush_and_release(n);
    n->closing = true;
    uv_timer_stop(&n->tick);
    while (n->pending != NULL) {
        struct cp_op *op = n->pending;
        n->pending = op->next;
        op_complete(op, TVMW_ESHUTDOWN);
    }
    while (n->read_wait != NULL) {
        struct cp_op *op = n->read_wait;
        n->read_wait = op->next;
        op_complete(op, TVMW_ESHUTDOWN);
    }
    /* The in-flight barrier and membership change complete through their
     * callbacks, which raft_close fires. */
    raft_close(&n->raft, on_raft_closed);
}

/* ---- raft FSM glue ------------------------------------------------------ */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cp_node *n = fsm->data;
    /* fsm->apply is not given the index; raft advances last_applied right
     * after this returns (shared/notes/libraft.md, pitfall 5). */
    uint64_t index = raft_last_applied(&n->raft) + 1;
    uint8_t reqid[CP_REQID_SIZE];
    struct cp_result *res = NULL;
    uint64_t t0 = tvmw_now_ns();
    int rv = cp_fsm_apply(n->fsm, index, buf->base, buf->len, reqid, &res);
    tvmw_hist_observe_ns(&n->apply_hist, tvmw_now_ns() - t0);
    *result = NULL;
    if (rv != 0) {
        store_failed(n, "apply", index, rv);
    }
    resolve_pending(n, index, reqid, res);
    return 0;
}

/* Snapshots are asynchronous (raft_fsm version 3, with the async_work the
 * raft guard adds to the I/O): here, on the loop, only a flush and a read
 * transaction at last_applied; the copy of the whole state (3.7 GB at a
 * million accounts, 14 s) runs on libuv's thread pool while the loop goes
 * on applying and answering. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cp_node *n = fsm->data;
    *bufs = NULL;
    *n_bufs = 0;
    if (n->snap != NULL) {
        /* raft takes one at a time: the last one failed before finalize */
        cp_fsm_snapshot_end(n->snap);
        n->snap = NULL;
    }
    n->snap_t0 = tvmw_now_ns();
    return cp_fsm_snapshot_begin(n->fsm, &n->snap) == 0 ? 0 : RAFT_IOERR;
}

/* libuv worker thread. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cp_node *n = fsm->data;
    struct raft_buffer *b = malloc(sizeof(*b));
    if (b == NULL) {
        return RAFT_NOMEM;
    }
    if (cp_fsm_snapshot_write(n->snap, &b->base, &b->len) != 0) {
        free(b);
        return RAFT_IOERR;
    }
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cp_node *n = fsm->data;
    size_t len = 0;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            len += (*bufs)[i].len;
            free((*bufs)[i].base);
        }
        free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    if (n->snap != NULL) {
        cp_fsm_snapshot_end(n->snap);
        n->snap = NULL;
        pthread_mutex_lock(&n->smu);
        n->status.snapshots_taken += len > 0;
        pthread_mutex_unlock(&n->smu);
        TVMW_LOG_INFO("raft", "snapshot %s bytes=%zu took_ms=%llu", len > 0 ? "stored" : "failed",
                      len, (unsigned long long)((tvmw_now_ns() - n->snap_t0) / 1000000u));
    }
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cp_node *n = fsm->data;
    int rv = cp_fsm_restore(n->fsm, buf->base, buf->len);
    if (rv != 0) {
        return RAFT_CORRUPT; /* raft keeps the buffer */
    }
    raft_free(buf->base);
    pthread_mutex_lock(&n->smu);
    n->status.snapshots_restored++;
    pthread_mutex_unlock(&n->smu);
    return 0;
}

/* ---- life cycle --------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int bootstrap(struct cp_node *n)
{
    struct raft_configuration conf;
    int rv = 0;
    raft_configuration_init(&conf);
    /* Identical on every initial member: the file's order (libraft checks
     * nothing; a different list would silently isolate a node). */
    for (unsigned i = 0; i < n->conf->n_nodes && rv == 0; i++) {
        rv = raft_configuration_add(&conf, n->conf->nodes[i].id, n->conf->nodes[i].raft_address,
                                    RAFT_VOTER);
    }
    if (rv == 0) {
        rv = raft_bootstrap(&n->raft, &conf);
        if (rv == 0) {
            TVMW_LOG_INFO("raft", "bootstrapped voters=%u", n->conf->n_nodes);
        } else if (rv == RAFT_CANTBOOTSTRAP) {
            rv = 0; /* not the first start: resume from the data dir */
        }
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        TVMW_LOG_ERROR("raft", "bootstrap failed: %s", raft_strerror(rv));
        return TVMW_ERAFT;
    }
    return 0;
}

int cp_node_new(const struct cp_node_opts *o, struct cp_node **out)
{
    char state_dir[600];
    int rv;
    struct cp_node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return -ENOMEM;
    }
    n->conf = o->conf;
    n->id = o->id;
    n->unsafe_ack = o->unsafe_ack_before_commit;
    snprintf(n->raft_address, sizeof(n->raft_address), "%s", o->raft_address);
    snprintf(n->raft_dir, sizeof(n->raft_dir), "%s/raft", o->data_dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", o->data_dir);
    pthread_mutex_init(&n->qmu, NULL);
    pthread_mutex_init(&n->smu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->applied_cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rv = mkdir_p(n->raft_dir)) != 0) {
        TVMW_LOG_ERROR("node", "cannot create %s: %s", n->raft_dir, tvmw_strerror(rv));
        goto err_free;
    }
    if ((rv = cp_fsm_open(state_dir, o->conf->state.map_size_mb, o->conf->state.dedup_window_s,
                          &n->fsm)) != 0) {
        TVMW_LOG_ERROR("node", "cannot open state %s: %s", state_dir, tvmw_strerror(rv));
        goto err_free;
    }
    cp_fsm_set_changelog_window(n->fsm, o->conf->state.changelog_entries);
    uv_loop_init(&n->loop);
    /* A peer that closes its socket must not kill us with SIGPIPE on the
     * next write; neither libuv nor libraft ignores it. */
    signal(SIGPIPE, SIG_IGN);
    if ((rv = raft_uv_tcp_init(&n->transport, &n->loop)) != 0 ||
        (rv = raft_uv_init(&n->guard.io, &n->loop, n->raft_dir, &n->transport)) != 0) {
        TVMW_LOG_ERROR("raft", "io init failed: %s", raft_strerror(rv));
        rv = TVMW_ERAFT;
        goto err_close_fsm;
    }
    cp_raftguard_wrap(&n->guard, &n->loop);
    n->raft_fsm = (struct raft_fsm){.version = 3,
                                    .data = n,
                                    .apply = fsm_apply,
                                    .snapshot = fsm_snapshot,
                                    .snapshot_async = fsm_snapshot_async,
                                    .restore = fsm_restore,
                                    .snapshot_finalize = fsm_snapshot_finalize};
    if ((rv = raft_init(&n->raft, &n->guard.io, &n->raft_fsm, n->id, n->raft_address)) != 0) {
        TVMW_LOG_ERROR("raft", "init failed: %s", raft_errmsg(&n->raft));
        rv = TVMW_ERAFT;
        goto err_close_fsm;
    }
    n->raft.data = n;
    cp_raftguard_attach(&n->guard, &n->raft);
    raft_set_election_timeout(&n->raft, o->conf->raft.election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, o->conf->raft.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&n->raft, o->conf->raft.snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, o->conf->raft.snapshot_trailing);
    raft_set_pre_vote(&n->raft, o->conf->raft.pre_vote);
    /* libraft 0.15's default is 30 s, and a follower that restarted with an
     * empty disk stays behind that long after installing the snapshot: the
     * leader keeps the follower's old match index until the timeout. */
    raft_set_install_snapshot_timeout(&n->raft, o->conf->raft.install_snapshot_timeout_ms);
    raft_uv_set_connect_retry_delay(&n->guard.io, 200);
    if (!o->join && tvmw_config_node(o->conf, o->id) != NULL) {
        if ((rv = bootstrap(n)) != 0) {
            goto err_close_fsm;
        }
    }
    if ((rv = raft_start(&n->raft)) != 0) {
        TVMW_LOG_ERROR("raft", "start failed: %s", raft_errmsg(&n->raft));
        rv = TVMW_ERAFT;
        goto err_close_fsm;
    }
    cp_raftguard_started(&n->guard);
    uv_async_init(&n->loop, &n->async, on_async);
    n->async.data = n;
    uv_check_init(&n->loop, &n->flush_check);
    n->flush_check.data = n;
    uv_check_start(&n->flush_check, on_flush_check);
    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(&n->loop, &n->sigint);
    uv_signal_init(&n->loop, &n->sigterm);
    n->sigint.data = n->sigterm.data = n;
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
    publish_status(n);
    TVMW_LOG_INFO("raft", "started id=%llu address=%s applied=%llu", (unsigned long long)n->id,
                  n->raft_address, (unsigned long long)cp_fsm_last_applied(n->fsm));
    *out = n;
    return 0;

err_close_fsm:
    /* raft_init/raft_start failures leave io to be closed by the process
     * exit; the node is not usable and main exits. */
    cp_fsm_close(n->fsm);
err_free:
    free(n);
    return rv;
}

int cp_node_run(struct cp_node *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return 0;
}

void cp_node_stop(struct cp_node *n)
{
    pthread_mutex_lock(&n->qmu);
    n->stopping = true;
    pthread_mutex_unlock(&n->qmu);
    pthread_mutex_lock(&n->smu);
    n->stopping_status = true;
    pthread_cond_broadcast(&n->applied_cv);
    pthread_mutex_unlock(&n->smu);
    uv_async_send(&n->async);
}

void cp_node_free(struct cp_node *n)
{
    if (n == NULL) {
        return;
    }
    uv_loop_close(&n->loop);
    cp_fsm_snapshot_end(n->snap); /* one that was being taken at the stop */
    cp_fsm_close(n->fsm);
    pthread_mutex_destroy(&n->qmu);
    pthread_mutex_destroy(&n->smu);
    pthread_cond_destroy(&n->applied_cv);
    free(n);
}

void cp_node_status(struct cp_node *n, struct cp_status *out)
{
    pthread_mutex_lock(&n->smu);
    *out = n->status;
    pthread_mutex_unlock(&n->smu);
}

uint64_t cp_node_wait_applied(struct cp_node *n, uint64_t after, unsigned timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&n->smu);
    while (n->status.applied_index <= after && !n->stopping_status) {
        if (pthread_cond_timedwait(&n->applied_cv, &n->smu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    uint64_t applied = n->status.applied_index;
    pthread_mutex_unlock(&n->smu);
    return applied;
}

struct cp_fsm *cp_node_fsm(struct cp_node *n)
{
    return n->fsm;
}

uint64_t cp_node_id(const struct cp_node *n)
{
    return n->id;
}

void cp_node_metrics(struct cp_node *n, struct tvmw_buf *out)
{
    tvmw_hist_write(out, "tvmw_cp_apply_seconds", "Time to apply one raft entry to LMDB.",
                    &n->apply_hist);
    tvmw_hist_write(out, "tvmw_cp_write_seconds",
                    "Time from a write's arrival at the loop to its applied result.",
                    &n->write_hist);
    tvmw_hist_write(out, "tvmw_cp_read_barrier_seconds",
                    "Time for a read barrier to apply (linearizable reads).", &n->barrier_hist);
}

/* ---- requests from HTTP threads ------------------------------------------ */

int cp_node_write(struct cp_node *n, void *cmd, size_t len, const uint8_t reqid[CP_REQID_SIZE],
                  unsigned timeout_ms, struct cp_result **res, uint64_t *leader_id)
{
    struct cp_op *op = op_new(OP_WRITE, timeout_ms);
    if (op == NULL) {
        raft_free(cmd);
        return -ENOMEM;
    }
    op->cmd = cmd;
    op->cmd_len = len;
    memcpy(op->reqid, reqid, CP_REQID_SIZE);
    return op_submit_wait(n, op, res, leader_id);
}

int cp_node_read_barrier(struct cp_node *n, unsigned timeout_ms, uint64_t *leader_id)
{
    struct cp_op *op = op_new(OP_READ, timeout_ms);
    if (op == NULL) {
        return -ENOMEM;
    }
    return op_submit_wait(n, op, NULL, leader_id);
}

int cp_node_change(struct cp_node *n, enum cp_change kind, uint64_t id, const char *raft_address,
                   unsigned timeout_ms, uint64_t *leader_id, char *msg, size_t msg_len)
{
    struct cp_op *op = op_new(OP_CHANGE, timeout_ms);
    if (op == NULL) {
        return -ENOMEM;
    }
    op->change = kind;
    op->member_id = id;
    snprintf(op->address, sizeof(op->address), "%s", raft_address ? raft_address : "");
    /* Keep a reference to read msg after completion. */
    op->refs++;
    int rv = op_submit_wait(n, op, NULL, leader_id);
    pthread_mutex_lock(&op->mu);
    if (op->done && msg != NULL) {
        snprintf(msg, msg_len, "%s", op->msg);
    }
    pthread_mutex_unlock(&op->mu);
    op_unref(op);
    return rv;
}
