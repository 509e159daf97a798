/*
 * The cluster definition (one JSON file shared by every node, see
 * docs/configuration.md) and the command-line choices of one node.
 * Parsed once at start-up into a const struct passed down.
 */
#ifndef TVMW_COMMON_CONFIG_H
#define TVMW_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TVMW_MAX_NODES        9
#define TVMW_MAX_EDGES        64
#define TVMW_ADDR_MAX         64
#define TVMW_MAX_CONFIG_BYTES (1 << 20)

struct tvmw_node_conf {
    uint64_t id;
    char raft_address[TVMW_ADDR_MAX];
    char http_address[TVMW_ADDR_MAX];
    char datacenter[64];
};

struct tvmw_edge_conf {
    char id[64];
    char http_address[TVMW_ADDR_MAX];
    char datacenter[64];
};

struct tvmw_config {
    char cluster_name[65];
    char admin_token[257];
    char data_root[512];
    struct {
        unsigned election_timeout_ms;
        unsigned heartbeat_timeout_ms;
        unsigned snapshot_threshold;
        unsigned snapshot_trailing;
        unsigned install_snapshot_timeout_ms;
        bool pre_vote;
    } raft;
    struct {
        size_t max_body_bytes;
        unsigned request_timeout_ms;
        unsigned max_connections;
    } http;
    struct {
        size_t map_size_mb;
        unsigned dedup_window_s;
        unsigned changelog_entries; /* raft entries of changes kept for the edge feed */
    } state;
    struct {
        unsigned check_interval_ms; /* built-in billing run; 0 = off */
        unsigned period_unit_s;     /* length of tariff period 1 */
        unsigned batch;             /* accounts per raft entry */
    } billing;
    struct {
        unsigned interval_ms; /* streaming-service health probes (leader); 0 = off */
        unsigned timeout_ms;  /* one probe; below interval_ms */
        unsigned down_after;  /* consecutive failures that make a service down */
        unsigned up_after;    /* consecutive successes that make it up */
    } probe;
    struct {
        unsigned max_writes; /* edge: device writes kept for the control plane at most */
    } journal;
    struct {
        unsigned skew_s;           /* edge: a token is good this long past its expiry */
        unsigned auth_duration_s;  /* edge: X-AuthDuration when the client sets none */
        unsigned session_accounts; /* edge: accounts whose playback sessions are counted */
        unsigned log_denies_per_s; /* edge: deny log lines per second per thread */
    } stream_auth;
    struct {
        unsigned check_interval_ms; /* leader: scheduled URL imports and expiry; 0 = off */
        unsigned expire_days;       /* programmes that began longer ago go; 0 = never */
        uint64_t max_file_bytes;    /* an uploaded or downloaded XMLTV file (gzip or not) */
        uint64_t max_xml_bytes;     /* the document after decompression */
        unsigned max_programmes;    /* programmes of one import */
        unsigned fetch_timeout_s;   /* a whole download */
        char spool_dir[512];        /* temporary files; "" = <data_root>/epg-spool */
    } epg;
    unsigned n_nodes;
    struct tvmw_node_conf nodes[TVMW_MAX_NODES];
    unsigned n_edges;
    struct tvmw_edge_conf edges[TVMW_MAX_EDGES];
};

/* Loads and validates FILE. On error writes a one-line reason into err. */
int tvmw_config_load(const char *path, struct tvmw_config *out, char *err, size_t err_len);
/* Same, from memory (tests). */
int tvmw_config_parse(const char *text, size_t len, struct tvmw_config *out, char *err,
                      size_t err_len);
/* The node entry with this id, or NULL. */
const struct tvmw_node_conf *tvmw_config_node(const struct tvmw_config *c, uint64_t id);
/* Splits "a.b.c.d:port"; host receives the address part. */
int tvmw_addr_split(const char *addr, char *host, size_t host_len, unsigned *port);

#endif
