/*
 * A control-plane node: libraft over its libuv TCP transport, the LMDB
 * state machine, and the hand-off between HTTP threads and the loop.
 *
 * Threads: one libuv loop thread owns raft and every FSM write. HTTP
 * handler threads (libmicrohttpd, one per connection) call the cp_node_*
 * request functions below; each pushes an operation onto a mutex-protected
 * queue, wakes the loop with uv_async_send() and blocks on a condition
 * variable until the loop completes the operation or the timeout passes.
 * Why this shape and not MHD on the loop: handlers can then be written as
 * straight-line code (parse, propose, wait, answer, or forward with a
 * blocking libcurl call to the leader), while raft and LMDB writes still
 * happen on one thread with no locks. The measured cost of the hand-off is
 * small next to a replicated fsync (shared/notes/libraft.md §2).
 *
 * Outcomes of a write (Raft thesis §6.3): the FSM keeps every command's
 * result by request id. The proposing node waits for the entry's index to
 * be applied; if the entry applied is ours, that result is the answer; if
 * another entry took the index (a new leader overwrote it), the command is
 * known not to have happened (TVMW_ENOTAPPLIED). RAFT_LEADERSHIPLOST alone
 * decides nothing: such entries often commit under the next leader.
 */
#ifndef TVMW_CONTROLPLANE_NODE_H
#define TVMW_CONTROLPLANE_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"

#define CP_MAX_MEMBERS 16
/* Exit status of a node whose state could not take a committed entry
 * (MDB_MAP_FULL, disk errors): it stops rather than diverge. */
#define CP_EXIT_STORE_FAILED 74

struct cp_node;

struct cp_node_opts {
    const struct tvmw_config *conf;
    uint64_t id;
    const char *raft_address;
    const char *data_dir; /* holds raft/ and state/ */
    bool join;            /* not an initial member: never bootstrap */
    /* FOR THE FAULT-INJECTION SUITE ONLY: answer writes as soon as they are
     * appended, before they commit. Breaks durability on purpose so that
     * tests/jepsen-like can prove it detects lost writes. */
    bool unsafe_ack_before_commit;
};

struct cp_member {
    uint64_t id;
    char raft_address[64];
    int role; /* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE */
};

/* A copy of the node's raft state, published by the loop for other threads. */
struct cp_status {
    int state; /* RAFT_UNAVAILABLE, RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER */
    uint64_t leader_id;
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    bool ready; /* can serve: leader whose election barrier applied, or follower with a leader */
    unsigned n_members;
    struct cp_member members[CP_MAX_MEMBERS];
    /* counters for /metrics */
    uint64_t leader_changes;
    uint64_t snapshots_taken;
    uint64_t snapshots_restored;
    uint64_t barriers;
    uint64_t writes_unknown;
    uint64_t config_rollbacks; /* done by the raft guard (raftguard.h) */
    uint64_t state_used_bytes;
    uint64_t state_map_bytes;
};

/* Opens the state, initialises raft (bootstrapping on first start of an
 * initial member) and starts it on a loop owned by the node. */
int cp_node_new(const struct cp_node_opts *opts, struct cp_node **out);
/* Runs the loop on the calling thread until cp_node_stop() finished. */
int cp_node_run(struct cp_node *n);
/* Any thread (and async-signal contexts via the loop's signal handler):
 * requests a clean stop. */
void cp_node_stop(struct cp_node *n);
/* After cp_node_run returned: closes the state and frees the node. */
void cp_node_free(struct cp_node *n);

void cp_node_status(struct cp_node *n, struct cp_status *out);
/* Any thread: waits up to timeout_ms until this node has applied an index
 * above `after` (or it stops); returns the applied index. */
uint64_t cp_node_wait_applied(struct cp_node *n, uint64_t after, unsigned timeout_ms);
struct cp_fsm *cp_node_fsm(struct cp_node *n);
uint64_t cp_node_id(const struct cp_node *n);
/* Apply latency histogram, etc., in Prometheus text. */
void cp_node_metrics(struct cp_node *n, struct tvmw_buf *out);

/*
 * Blocking requests from HTTP threads. All return 0 or:
 *   TVMW_ENOTLEADER  not the leader; *leader_id is the known leader or 0
 *   TVMW_EUNKNOWN    the outcome is not known within timeout_ms
 *   TVMW_ENOTAPPLIED the write was dropped from the log; safe to retry
 *   TVMW_ESHUTDOWN   the node is stopping
 *   TVMW_EBUSY       (membership) another change is in progress
 *   TVMW_ERAFT       (membership) raft refused; *msg says why
 */

/* Proposes a command (encoded with cp_cmd_encode) and waits for its
 * result. Takes ownership of cmd (malloc'd). */
int cp_node_write(struct cp_node *n, void *cmd, size_t len, const uint8_t reqid[CP_REQID_SIZE],
                  unsigned timeout_ms, struct cp_result **res, uint64_t *leader_id);
/* Returns once a barrier issued after this call has applied on this node,
 * which must be the leader: a read of the local state is then
 * linearizable. Reads arriving together share one barrier. */
int cp_node_read_barrier(struct cp_node *n, unsigned timeout_ms, uint64_t *leader_id);

enum cp_change { CP_CHANGE_ADD, CP_CHANGE_PROMOTE, CP_CHANGE_REMOVE, CP_CHANGE_TRANSFER };
/* Membership: ADD makes id a standby (non-voter) at raft_address, PROMOTE a
 * voter (after catch-up), REMOVE removes it, TRANSFER hands leadership to
 * id (0: the best voter); *leader_id is the leader afterwards. */
int cp_node_change(struct cp_node *n, enum cp_change kind, uint64_t id, const char *raft_address,
                   unsigned timeout_ms, uint64_t *leader_id, char *msg, size_t msg_len);

#endif
