/*
 * The follower: the one thread that keeps the edge's state current
 * (docs/edge-protocol.md).
 *
 * It follows one control-plane node at a time, chosen from the cluster
 * file's `nodes`: first one in the edge's datacenter (at random among
 * them), else any at random. Without a local state, or when the feed
 * answers 410, it downloads a snapshot, streaming it through
 * edge/snapshot.c into a new environment (edge/store.c) that replaces the
 * state only once verified; a refused snapshot leaves the state as it was.
 * Otherwise it long-polls the feed (wait_ms = EDGE_FOLLOW_WAIT_MS) and
 * applies each answer in one transaction.
 *
 * Failover: any failure (no answer, timeout, an HTTP error, a malformed
 * answer, a refused snapshot, a node that is behind the edge) moves to the
 * next node, after a pause that doubles from EDGE_FOLLOW_BACKOFF_MIN_MS to
 * EDGE_FOLLOW_BACKOFF_MAX_MS with jitter (a random half), reset by the
 * next success. A node that still answers but has fallen behind the
 * cluster (partitioned from the leader: its last_index stops while
 * another's moves) is found by probing another node every
 * EDGE_FOLLOW_PROBE_MS (one feed request with wait_ms=0), and left when it
 * is still behind EDGE_FOLLOW_LAG_MS later. After EDGE_FOLLOW_HOME_MS on
 * a node of another datacenter the follower tries its own again.
 *
 * A node whose last_index is below the edge's is behind it (restarting, or
 * cut off); if all stay behind for EDGE_FOLLOW_BEHIND_RESET_MS, the
 * cluster must have gone back (restored from an older backup) and the
 * edge reloads from a snapshot.
 *
 * When every node fails the edge keeps serving its state, logs that it
 * does, and reports itself stale; the follower keeps trying and catches up
 * (by feed, or by snapshot past the window) when a node returns.
 *
 * Threads: start/stop/free from the main thread; edge_follow_status from
 * any.
 */
#ifndef TVMW_EDGE_FOLLOW_H
#define TVMW_EDGE_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

#define EDGE_FOLLOW_WAIT_MS        10000
#define EDGE_FOLLOW_BACKOFF_MIN_MS 100
#define EDGE_FOLLOW_BACKOFF_MAX_MS 5000
#define EDGE_FOLLOW_CONNECT_MS     2000
#define EDGE_FOLLOW_PROBE_MS       5000
#define EDGE_FOLLOW_PROBE_TIMEOUT  1000 /* ms */
#define EDGE_FOLLOW_LAG_MS         5000
#define EDGE_FOLLOW_HOME_MS        60000
/* Every node behind the edge for this long: the cluster went back (a
 * restore from an older backup); reload from a snapshot. */
#define EDGE_FOLLOW_BEHIND_RESET_MS 60000
/* Pause after a long poll that came back early with nothing new. */
#define EDGE_FOLLOW_SPIN_PAUSE_MS 100
/* A snapshot download that receives nothing for this long is abandoned. */
#define EDGE_FOLLOW_SNAPSHOT_STALL_S 30
/* Stale after this many long-poll waits without contact. */
#define EDGE_FOLLOW_STALE_WAITS 3

struct edge_store;
struct edge_follow;

struct edge_follow_opts {
    const struct tvmw_config *conf; /* borrowed; outlives the follower */
    const struct tvmw_edge_conf *self;
    struct edge_store *store; /* written by the follower thread only */
    unsigned wait_ms;         /* feed long-poll; 0: EDGE_FOLLOW_WAIT_MS */
};

struct edge_follow_status {
    bool has_state;
    uint64_t applied_index;
    uint64_t cp_last_index; /* highest last_index a node reported; 0: none yet */
    uint64_t following_id;  /* the node followed (or being tried) */
    char following_address[TVMW_ADDR_MAX];
    bool contacted;               /* some node answered since start */
    double seconds_since_contact; /* -1 if never */
    /* No contact for EDGE_FOLLOW_STALE_WAITS waits, none ever, or every
     * node failed in a row since the last contact. */
    bool stale;
    unsigned consecutive_failures;
    uint64_t snapshots_loaded;
    uint64_t snapshots_refused;
    uint64_t batches_applied;
    uint64_t changes_applied;
    uint64_t feed_errors; /* every failure counted above, snapshots included */
    uint64_t node_switches;
    char last_error[256];
};

/* Starts the follower thread. 0, -ENOMEM, TVMW_ECONFIG (no nodes), or
 * -errno if the thread could not start. */
int edge_follow_start(const struct edge_follow_opts *opts, struct edge_follow **out);
/* Interrupts any request or pause and joins the thread; the status stays
 * readable (HTTP threads may still ask) until edge_follow_free. Idempotent;
 * NULL is a no-op. */
void edge_follow_stop(struct edge_follow *f);
/* Stops if needed, then frees. No thread may call edge_follow_status any
 * more. NULL is a no-op. */
void edge_follow_free(struct edge_follow *f);
/* A consistent copy of the status. Any thread, until edge_follow_free. */
void edge_follow_status(struct edge_follow *f, struct edge_follow_status *out);

#endif
