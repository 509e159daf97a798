/*
 * tvmw-edge: one edge node. See docs/edge.md.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "edge/api.h"
#include "edge/device.h"
#include "edge/follow.h"
#include "edge/journal.h"
#include "edge/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tvmw-edge --config FILE --id EDGE_ID [--data-dir DIR]\n"
               "                 [--http-threads N (2)] [--log-level error|warn|info|debug]\n"
               "                 [--print-config]\n");
}

static const struct tvmw_edge_conf *find_edge(const struct tvmw_config *c, const char *id)
{
    for (unsigned i = 0; i < c->n_edges; i++) {
        if (strcmp(c->edges[i].id, id) == 0) {
            return &c->edges[i];
        }
    }
    return NULL;
}

static void print_config(const struct tvmw_config *c, const struct tvmw_edge_conf *self,
                         const char *dir)
{
    printf("cluster_name=%s\nedge_id=%s\nhttp_address=%s\ndatacenter=%s\ndata_dir=%s\n"
           "state.map_size_mb=%zu\nhttp.max_connections=%u\nfeed.wait_ms=%d\n",
           c->cluster_name, self->id, self->http_address, self->datacenter, dir,
           c->state.map_size_mb, c->http.max_connections, EDGE_FOLLOW_WAIT_MS);
    for (unsigned i = 0; i < c->n_nodes; i++) {
        printf("nodes[%u]=%llu %s %s\n", i, (unsigned long long)c->nodes[i].id,
               c->nodes[i].http_address, c->nodes[i].datacenter);
    }
}

/* SIGINT/SIGTERM are blocked in every thread and taken by sigwait() in
 * main; SIGPIPE is ignored (a client that hangs up is not fatal). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"http-threads", required_argument, NULL, 't'},
                                         {"print-config", no_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *dir = NULL, *id = NULL;
    enum tvmw_log_level level = TVMW_LOG_LEVEL_INFO;
    int print = 0, c;
    unsigned long threads = 2;
    char *end;

    while ((c = getopt_long(argc, argv, "c:i:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'l':
            if (tvmw_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "tvmw-edge: unknown log level %s\n", optarg);
                return 2;
            }
            break;
        case 't':
            threads = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || threads == 0 || threads > 64) {
                fprintf(stderr, "tvmw-edge: --http-threads must be 1..64\n");
                return 2;
            }
            break;
        case 'p':
            print = 1;
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL || id == NULL || id[0] == '\0' || optind != argc) {
        usage(stderr);
        return 2;
    }

    static struct tvmw_config conf;
    char err[512];
    if (tvmw_config_load(config, &conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "tvmw-edge: %s: %s\n", config, err);
        return 2;
    }
    const struct tvmw_edge_conf *self = find_edge(&conf, id);
    if (self == NULL) {
        fprintf(stderr, "tvmw-edge: edge \"%s\" is not in the \"edges\" of %s\n", id, config);
        return 2;
    }
    static char dirbuf[600];
    if (dir == NULL) {
        int n = snprintf(dirbuf, sizeof(dirbuf), "%s/edge-%s", conf.data_root, id);
        if (n < 0 || (size_t)n >= sizeof(dirbuf)) {
            fprintf(stderr, "tvmw-edge: data dir path too long\n");
            return 2;
        }
        dir = dirbuf;
    }
    if (print) {
        print_config(&conf, self, dir);
        return 0;
    }

    tvmw_log_init(id, level);
    sigset_t sigs;
    block_signals(&sigs);

    struct edge_store *store;
    int rv = edge_store_open(dir, conf.state.map_size_mb, &store);
    if (rv != 0) {
        TVMW_LOG_ERROR("main", "cannot use data dir %s: %s", dir,
                       rv == TVMW_EBUSY ? "in use by another tvmw-edge" : tvmw_strerror(rv));
        return 1;
    }
    struct edge_journal *journal;
    if ((rv = edge_journal_open(dir, &conf, &journal)) != 0) {
        TVMW_LOG_ERROR("main", "cannot open the device-write journal in %s: %s", dir,
                       tvmw_strerror(rv));
        edge_store_close(store);
        return 1;
    }
    struct edge_follow_opts fo = {.conf = &conf, .self = self, .store = store};
    struct edge_follow *follow;
    if ((rv = edge_follow_start(&fo, &follow)) != 0) {
        TVMW_LOG_ERROR("main", "cannot start the follower: %s", tvmw_strerror(rv));
        edge_journal_close(journal);
        edge_store_close(store);
        return 1;
    }
    struct edge_device_opts dopts = {
        .conf = &conf, .self = self, .store = store, .follow = follow, .journal = journal};
    struct edge_device *device = NULL;
    struct edge_api *api = NULL;
    if ((rv = edge_journal_start(journal)) != 0 || (rv = edge_device_new(&dopts, &device)) != 0) {
        TVMW_LOG_ERROR("main", "cannot start the device API: %s", tvmw_strerror(rv));
        goto out_stop;
    }
    struct edge_api_opts ao = {.conf = &conf,
                               .self = self,
                               .store = store,
                               .follow = follow,
                               .device = device,
                               .threads = (unsigned)threads};
    if ((rv = edge_api_start(&ao, &api)) != 0) {
        TVMW_LOG_ERROR("main", "cannot start HTTP on %s: %s", self->http_address,
                       tvmw_strerror(rv));
        goto out_stop;
    }
    TVMW_LOG_INFO("main", "edge %s serving on %s data_dir=%s", id, self->http_address, dir);

    int sig = 0;
    sigwait(&sigs, &sig);
    TVMW_LOG_INFO("main", "signal %d: stopping", sig);
out_stop:
    /* The writer first; HTTP threads may read the follower's status and
     * the store until edge_api_stop returns. The device API then hands its
     * last batched writes to the journal, which keeps what it could not
     * send for the next start. */
    edge_follow_stop(follow);
    edge_api_stop(api);
    edge_device_free(device);
    edge_journal_stop(journal);
    edge_follow_free(follow);
    edge_journal_close(journal);
    edge_store_close(store);
    TVMW_LOG_INFO("main", "stopped");
    return rv == 0 ? 0 : 1;
}
