/*
 * Error codes shared by every tvmw module.
 *
 * A function that can fail returns 0 or a negative code: a negative errno
 * (libuv's codes pass through unchanged) or one of ours below, from -1000
 * down, clear of errno and of libuv's -3000s/-4000s (LMDB's convention).
 * Foreign codes (RAFT_*, MDB_*, CURLcode) are translated once, where the
 * library is called.
 */
#ifndef TVMW_COMMON_ERR_H
#define TVMW_COMMON_ERR_H

enum {
    TVMW_ENOTLEADER = -1000,  /* this node is not the leader */
    TVMW_EMALFORMED = -1001,  /* input does not parse */
    TVMW_ETOOBIG = -1002,     /* input over a configured limit */
    TVMW_ECORRUPT = -1003,    /* stored or received data fails its checks */
    TVMW_ENOTFOUND = -1004,   /* no such object */
    TVMW_EUNKNOWN = -1005,    /* outcome unknown (leadership lost, timeout) */
    TVMW_ENOTAPPLIED = -1006, /* the command was dropped from the log */
    TVMW_EBUSY = -1007,       /* a conflicting operation is in progress */
    TVMW_ESHUTDOWN = -1008,   /* the node is stopping */
    TVMW_ENOLEADER = -1009,   /* no leader is known */
    TVMW_ESTORE = -1010,      /* the state store failed */
    TVMW_ERAFT = -1011,       /* libraft refused the call */
    TVMW_ECONFIG = -1012,     /* invalid configuration */
    TVMW_EIO = -1013,         /* I/O or network failure */
};

/* Returns a static description of any code above or of a negative errno. */
const char *tvmw_strerror(int code);

#endif
