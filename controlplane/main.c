/*
 * tvmw-cp: one control-plane node. See docs/configuration.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/api.h"
#include "controlplane/epg_import.h"
#include "controlplane/keys.h"
#include "controlplane/node.h"
#include "controlplane/probe.h"
#include "controlplane/scheduler.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tvmw-cp --config FILE --id N [--data-dir DIR] [--join]\n"
               "               [--raft-address IP:PORT] [--http-address IP:PORT]\n"
               "               [--log-level error|warn|info|debug] [--print-config]\n"
               "               [--unsafe-ack-before-commit]  (fault-injection tests only)\n");
}

static void print_config(const struct tvmw_config *c, uint64_t id, const char *raft,
                         const char *http, const char *dir, int join)
{
    printf("cluster_name=%s\nnode_id=%llu\nraft_address=%s\nhttp_address=%s\ndata_dir=%s\n"
           "join=%d\nraft.election_timeout_ms=%u\nraft.heartbeat_timeout_ms=%u\n"
           "raft.snapshot_threshold=%u\nraft.snapshot_trailing=%u\nraft.pre_vote=%d\n"
           "http.max_body_bytes=%zu\nhttp.request_timeout_ms=%u\nhttp.max_connections=%u\n"
           "state.map_size_mb=%zu\nstate.dedup_window_s=%u\nadmin_token=(%zu chars)\n",
           c->cluster_name, (unsigned long long)id, raft, http, dir, join,
           c->raft.election_timeout_ms, c->raft.heartbeat_timeout_ms, c->raft.snapshot_threshold,
           c->raft.snapshot_trailing, c->raft.pre_vote, c->http.max_body_bytes,
           c->http.request_timeout_ms, c->http.max_connections, c->state.map_size_mb,
           c->state.dedup_window_s, strlen(c->admin_token));
    printf("probe.interval_ms=%u\nprobe.timeout_ms=%u\nprobe.down_after=%u\nprobe.up_after=%u\n",
           c->probe.interval_ms, c->probe.timeout_ms, c->probe.down_after, c->probe.up_after);
    printf("epg.check_interval_ms=%u\nepg.expire_days=%u\nepg.max_file_bytes=%llu\n"
           "epg.max_xml_bytes=%llu\nepg.max_programmes=%u\nepg.fetch_timeout_s=%u\n"
           "epg.spool_dir=%s\n",
           c->epg.check_interval_ms, c->epg.expire_days, (unsigned long long)c->epg.max_file_bytes,
           (unsigned long long)c->epg.max_xml_bytes, c->epg.max_programmes, c->epg.fetch_timeout_s,
           c->epg.spool_dir);
    for (unsigned i = 0; i < c->n_nodes; i++) {
        printf("nodes[%u]=%llu %s %s %s\n", i, (unsigned long long)c->nodes[i].id,
               c->nodes[i].raft_address, c->nodes[i].http_address, c->nodes[i].datacenter);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {"join", no_argument, NULL, 'j'},
                                         {"raft-address", required_argument, NULL, 'r'},
                                         {"http-address", required_argument, NULL, 'h'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"print-config", no_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'H'},
                                         {"unsafe-ack-before-commit", no_argument, NULL, 'U'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *dir = NULL, *raft = NULL, *http = NULL;
    enum tvmw_log_level level = TVMW_LOG_LEVEL_INFO;
    unsigned long long id = 0;
    int join = 0, print = 0, unsafe = 0, c;
    char *end;

    while ((c = getopt_long(argc, argv, "c:i:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'i':
            id = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || id == 0) {
                fprintf(stderr, "tvmw-cp: --id must be a positive integer\n");
                return 2;
            }
            break;
        case 'd':
            dir = optarg;
            break;
        case 'j':
            join = 1;
            break;
        case 'r':
            raft = optarg;
            break;
        case 'h':
            http = optarg;
            break;
        case 'l':
            if (tvmw_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "tvmw-cp: unknown log level %s\n", optarg);
                return 2;
            }
            break;
        case 'p':
            print = 1;
            break;
        case 'H':
            usage(stdout);
            return 0;
        case 'U':
            unsafe = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL || id == 0 || optind != argc) {
        usage(stderr);
        return 2;
    }

    static struct tvmw_config conf;
    char err[512];
    if (tvmw_config_load(config, &conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "tvmw-cp: %s: %s\n", config, err);
        return 2;
    }
    const struct tvmw_node_conf *self = tvmw_config_node(&conf, id);
    if (raft == NULL && self != NULL) {
        raft = self->raft_address;
    }
    if (http == NULL && self != NULL) {
        http = self->http_address;
    }
    if (raft == NULL || http == NULL) {
        fprintf(stderr,
                "tvmw-cp: node %llu is not in %s: give --raft-address and "
                "--http-address (and --join)\n",
                id, config);
        return 2;
    }
    char host[TVMW_ADDR_MAX];
    unsigned port;
    if (tvmw_addr_split(raft, host, sizeof(host), &port) != 0 ||
        tvmw_addr_split(http, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "tvmw-cp: addresses must be IPv4:port\n");
        return 2;
    }
    static char dirbuf[600];
    if (dir == NULL) {
        snprintf(dirbuf, sizeof(dirbuf), "%s/node-%llu", conf.data_root, id);
        dir = dirbuf;
    }
    if (print) {
        print_config(&conf, id, raft, http, dir, join);
        return 0;
    }

    char node_name[32];
    snprintf(node_name, sizeof(node_name), "%llu", id);
    tvmw_log_init(node_name, level);

    struct cp_node_opts no = {.conf = &conf,
                              .id = id,
                              .raft_address = raft,
                              .data_dir = dir,
                              .join = join,
                              .unsafe_ack_before_commit = unsafe};
    if (unsafe) {
        TVMW_LOG_WARN("main", "--unsafe-ack-before-commit: writes are acknowledged before they "
                              "commit; acknowledged writes WILL be lost. Test use only.");
    }
    struct cp_node *node;
    int rv = cp_node_new(&no, &node);
    if (rv != 0) {
        TVMW_LOG_ERROR("main", "cannot start node: %s", tvmw_strerror(rv));
        return 1;
    }
    struct cp_api *api;
    rv = cp_api_start(&conf, node, http, &api);
    if (rv != 0) {
        TVMW_LOG_ERROR("main", "cannot start HTTP on %s: %s", http, tvmw_strerror(rv));
        cp_node_stop(node);
        cp_node_run(node);
        cp_node_free(node);
        return 1;
    }
    struct cp_scheduler *sched = NULL;
    if (cp_scheduler_start(&conf, node, &sched) != 0) {
        TVMW_LOG_WARN("main", "periodic jobs could not start");
    }
    struct cp_probe *probe = NULL;
    if (cp_probe_start(&conf, node, &probe) != 0) {
        TVMW_LOG_WARN("main", "streaming-service health probes could not start");
    }
    cp_api_set_probe(api, probe);
    struct cp_keys_keeper *keeper = NULL;
    if (cp_keys_keeper_start(&conf, node, &keeper) != 0) {
        TVMW_LOG_WARN("main", "the signing-key keeper could not start");
    }
    struct cp_epg_scheduler *epg = NULL;
    if (cp_epg_scheduler_start(&conf, node, &epg) != 0) {
        TVMW_LOG_WARN("main", "EPG imports and expiry could not start");
    }
    cp_node_run(node); /* until SIGINT/SIGTERM */
    cp_epg_scheduler_stop(epg);
    cp_keys_keeper_stop(keeper);
    cp_scheduler_stop(sched);
    cp_api_stop(api);
    cp_probe_stop(probe); /* after the API: /metrics reads it */
    cp_node_free(node);
    TVMW_LOG_INFO("main", "stopped");
    return 0;
}
