/*
 * Edge state store (see store.h for the contract).
 *
 * Layout of <data-dir>:
 *   LOCK        flock'd by the running edge
 *   state/      the current environment (data.mdb, lock.mdb)
 *   state.new/  a snapshot being loaded; garbage at open
 *   state.old/  only between the two renames of the fallback swap
 *
 * Generations: each environment is a `struct edge_store_gen` with a
 * reference count under s->mu. The store holds one reference to the
 * current generation; every reader holds one for the length of its
 * transaction. A swap replaces s->cur and drops the store's reference;
 * whoever drops the last one closes the environment. The files of a
 * retired generation are unlinked at once (its open descriptors and map
 * keep working), so nothing waits for slow readers.
 */
#include "edge/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "edge/feed.h"
#include "edge/proto.h"
#include "edge/tcindex.h"

#define STORE_FORMAT     5 /* 2: token-check index; 3, 5: account, channel tariffs; 4: int keys */
#define LOAD_TXN_RECORDS 50000 /* records per write txn while loading a snapshot */
#define PATH_LEN         600

static const char *const db_names[EDGE_DB_MAX + 1] = {
    [EDGE_DB_CLIENTS] = "clients",
    [EDGE_DB_CUSTOMERS] = "customers",
    [EDGE_DB_ACCOUNTS] = "accounts",
    [EDGE_DB_DEVICES] = "devices",
    [EDGE_DB_TARIFFS] = "tariffs",
    [EDGE_DB_MESSAGES] = "messages",
    [EDGE_DB_CHANNELS] = "channels",
    [EDGE_DB_CATEGORIES] = "categories",
    [EDGE_DB_DATACENTERS] = "datacenters",
    [EDGE_DB_SERVICES] = "services",
    [EDGE_DB_REL] = "rel",
    [EDGE_DB_UNIQ] = "uniq",
    [EDGE_DB_KEYS] = "keys",
    [EDGE_DB_DSESS] = "dsess",
    [EDGE_DB_ACC_SETTINGS] = "acc_settings",
    [EDGE_DB_PROGRAMS] = "programs",
};

struct edge_store_gen {
    MDB_env *env;
    MDB_dbi meta;
    MDB_dbi dbi[EDGE_DB_MAX + 1]; /* [0] unused */
    MDB_dbi tcx[EDGE_TCX_N];      /* the token check's index */
    struct edge_tcx_dbs tcxd;     /* the same, with what it derives from */
    unsigned refs;                /* guarded by the store's mu */
};

struct edge_store {
    char dir[PATH_LEN];
    char state_path[PATH_LEN];
    char new_path[PATH_LEN];
    char old_path[PATH_LEN];
    size_t map_size_mb;
    int lock_fd;
    pthread_mutex_t mu;         /* guards cur and every gen's refs */
    struct edge_store_gen *cur; /* NULL: no state; written by the writer thread only */
    uint64_t applied_index;     /* writer thread only */
    /* Bumped after every change of cur (sticky readers reopen) and after
     * every commit that changed db 13 (key rings reload). */
    _Atomic uint64_t swap_seq;
    _Atomic uint64_t keys_seq;
};

struct edge_store_load {
    struct edge_store *s;
    struct edge_store_gen *gen;
    MDB_txn *txn;
    uint64_t in_txn;
};

static int err_from_mdb(int rc)
{
    if (rc == 0) {
        return 0;
    }
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc == ENOMEM) {
        return -ENOMEM;
    }
    return TVMW_ESTORE;
}

/* ---- files ----------------------------------------------------------------- */

/* Removes an environment directory (flat: LMDB's files only). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char path[PATH_LEN + 300];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) {
            TVMW_LOG_WARN("store", "cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT) {
        TVMW_LOG_WARN("store", "cannot remove %s: %s", dir, strerror(errno));
    }
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_LEN];
    int n = snprintf(tmp, sizeof(tmp), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
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

/* ---- generations ------------------------------------------------------------ */

static void gen_close(struct edge_store_gen *g)
{
    if (g != NULL) {
        mdb_env_close(g->env);
        free(g);
    }
}

static void gen_unref(struct edge_store *s, struct edge_store_gen *g)
{
    pthread_mutex_lock(&s->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) {
        gen_close(g);
    }
}

static int put_meta(MDB_txn *txn, MDB_dbi meta, const char *key, const void *val, size_t len)
{
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
    MDB_val v = {.mv_size = len, .mv_data = (void *)val};
    return mdb_put(txn, meta, &k, &v, 0);
}

static int put_meta_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t value)
{
    uint8_t b[8];
    tvmw_put_u64(b, value);
    return put_meta(txn, meta, key, b, sizeof(b));
}

/* Opens the environment in dir; create: a new one (every db created). */
static int gen_open(const char *dir, size_t map_size_mb, bool create, struct edge_store_gen **out,
                    char *why, size_t why_len)
{
    struct edge_store_gen *g = calloc(1, sizeof(*g));
    MDB_txn *txn;
    if (g == NULL) {
        return -ENOMEM;
    }
    int rc = mdb_env_create(&g->env);
    if (rc != 0) {
        free(g);
        return err_from_mdb(rc);
    }
    mdb_env_set_mapsize(g->env, map_size_mb << 20);
    mdb_env_set_maxdbs(g->env, EDGE_DB_MAX + 2 + EDGE_TCX_N);
    /* NOSYNC: rebuildable state (store.h). NOTLS: HTTP threads' reads are
     * not tied to thread-local reader slots. A new environment (a snapshot
     * load) is written through the map (WRITEMAP: no copy of every page at
     * each commit, a third of a large load's time); load_commit reopens it
     * without, so that serving does not keep every page written resident.
     * The file is then as large as the map, sparse. */
    unsigned env_flags = MDB_NOSYNC | MDB_NOTLS | (create ? MDB_WRITEMAP : 0);
    if ((rc = mdb_env_open(g->env, dir, env_flags, 0600)) != 0) {
        goto err_close;
    }
    if ((rc = mdb_txn_begin(g->env, NULL, 0, &txn)) != 0) {
        goto err_close;
    }
    unsigned flags = create ? MDB_CREATE : 0;
    if ((rc = mdb_dbi_open(txn, "meta", flags, &g->meta)) != 0) {
        goto err_abort;
    }
    for (unsigned db = EDGE_DB_MIN; db <= EDGE_DB_MAX; db++) {
        if ((rc = mdb_dbi_open(txn, db_names[db], flags, &g->dbi[db])) != 0) {
            goto err_abort;
        }
    }
    for (unsigned x = 0; x < EDGE_TCX_N; x++) {
        if ((rc = mdb_dbi_open(txn, edge_tcx_names[x], flags | EDGE_TCX_DB_FLAGS, &g->tcx[x])) !=
            0) {
            goto err_abort;
        }
        g->tcxd.tcx[x] = g->tcx[x];
    }
    g->tcxd.accounts = g->dbi[EDGE_DB_ACCOUNTS];
    g->tcxd.rel = g->dbi[EDGE_DB_REL];
    if ((rc = mdb_txn_commit(txn)) != 0) {
        goto err_close;
    }
    g->refs = 1;
    *out = g;
    return 0;

err_abort:
    mdb_txn_abort(txn);
err_close:
    mdb_env_close(g->env);
    free(g);
    snprintf(why, why_len, "%s", mdb_strerror(rc));
    return err_from_mdb(rc);
}

/* Checks a state found on disk and marks it in use (boot id, not clean),
 * synced, so that an OS crash from now on is recognised at the next open.
 * Returns a reason on refusal. */
static const char *gen_adopt(struct edge_store_gen *g, uint64_t *applied)
{
    MDB_txn *txn;
    MDB_val k, v;
    char boot[64], stored[64] = "";
    if (mdb_txn_begin(g->env, NULL, 0, &txn) != 0) {
        return "cannot begin a transaction";
    }
    k = (MDB_val){.mv_size = 6, .mv_data = "format"};
    if (mdb_get(txn, g->meta, &k, &v) != 0 || v.mv_size != 4 ||
        tvmw_get_u32(v.mv_data) != STORE_FORMAT) {
        mdb_txn_abort(txn);
        return "unknown format";
    }
    k = (MDB_val){.mv_size = 13, .mv_data = "applied_index"};
    if (mdb_get(txn, g->meta, &k, &v) != 0 || v.mv_size != 8) {
        mdb_txn_abort(txn);
        return "no applied_index (incomplete load)";
    }
    *applied = tvmw_get_u64(v.mv_data);
    k = (MDB_val){.mv_size = 7, .mv_data = "boot_id"};
    if (mdb_get(txn, g->meta, &k, &v) == 0 && v.mv_size < sizeof(stored)) {
        memcpy(stored, v.mv_data, v.mv_size);
        stored[v.mv_size] = '\0';
    }
    k = (MDB_val){.mv_size = 5, .mv_data = "clean"};
    bool clean =
        mdb_get(txn, g->meta, &k, &v) == 0 && v.mv_size == 1 && ((const char *)v.mv_data)[0] == '1';
    tvmw_boot_id(boot, sizeof(boot));
    if (!clean && strcmp(stored, boot) != 0) {
        mdb_txn_abort(txn);
        return "not closed cleanly before a reboot (unsynced pages may be torn)";
    }
    if (put_meta(txn, g->meta, "boot_id", boot, strlen(boot)) != 0 ||
        put_meta(txn, g->meta, "clean", "0", 1) != 0 || mdb_txn_commit(txn) != 0) {
        return "cannot write the open mark";
    }
    if (mdb_env_sync(g->env, 1) != 0) {
        return "cannot sync";
    }
    return NULL;
}

/* ---- open / close ---------------------------------------------------------- */

static int lock_dir(struct edge_store *s)
{
    char path[PATH_LEN + 8];
    snprintf(path, sizeof(path), "%s/LOCK", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        return -errno;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int rv = errno == EWOULDBLOCK ? TVMW_EBUSY : -errno;
        close(s->lock_fd);
        s->lock_fd = -1;
        return rv;
    }
    return 0;
}

/* Finishes or undoes an interrupted swap and drops leftovers. */
static void recover_dirs(struct edge_store *s)
{
    if (!exists(s->state_path) && exists(s->old_path)) {
        /* Crashed between the two renames of the fallback swap: the old
         * state is complete; the new one is lost (it can be downloaded). */
        if (rename(s->old_path, s->state_path) != 0) {
            TVMW_LOG_WARN("store", "cannot restore %s: %s", s->old_path, strerror(errno));
        }
    }
    remove_dir(s->old_path);
    remove_dir(s->new_path);
}

static void open_state(struct edge_store *s)
{
    struct edge_store_gen *g;
    uint64_t applied = 0;
    const char *why = NULL;
    if (!exists(s->state_path)) {
        TVMW_LOG_INFO("store", "no local state in %s", s->dir);
        return;
    }
    char reason[128];
    int rv = gen_open(s->state_path, s->map_size_mb, false, &g, reason, sizeof(reason));
    if (rv != 0) {
        why = reason;
    } else if ((why = gen_adopt(g, &applied)) != NULL) {
        gen_close(g);
    }
    if (why != NULL) {
        TVMW_LOG_WARN("store", "discarding local state in %s: %s", s->state_path, why);
        remove_dir(s->state_path);
        return;
    }
    s->cur = g;
    s->applied_index = applied;
    TVMW_LOG_INFO("store", "local state opened dir=%s applied_index=%" PRIu64, s->state_path,
                  applied);
}

int edge_store_open(const char *data_dir, size_t map_size_mb, struct edge_store **out)
{
    struct edge_store *s = calloc(1, sizeof(*s));
    int rv;
    if (s == NULL) {
        return -ENOMEM;
    }
    s->lock_fd = -1;
    s->map_size_mb = map_size_mb;
    if (snprintf(s->dir, sizeof(s->dir), "%s", data_dir) >= (int)sizeof(s->dir) - 16) {
        free(s);
        return -ENAMETOOLONG;
    }
    snprintf(s->state_path, sizeof(s->state_path), "%s/state", data_dir);
    snprintf(s->new_path, sizeof(s->new_path), "%s/state.new", data_dir);
    snprintf(s->old_path, sizeof(s->old_path), "%s/state.old", data_dir);
    if ((rv = mkdir_p(data_dir)) != 0 || (rv = lock_dir(s)) != 0) {
        free(s);
        return rv;
    }
    pthread_mutex_init(&s->mu, NULL);
    recover_dirs(s);
    open_state(s);
    *out = s;
    return 0;
}

void edge_store_close(struct edge_store *s)
{
    if (s == NULL) {
        return;
    }
    struct edge_store_gen *g = s->cur;
    if (g != NULL) {
        MDB_txn *txn;
        if (mdb_txn_begin(g->env, NULL, 0, &txn) == 0) {
            if (put_meta(txn, g->meta, "clean", "1", 1) == 0) {
                mdb_txn_commit(txn);
            } else {
                mdb_txn_abort(txn);
            }
        }
        mdb_env_sync(g->env, 1);
        s->cur = NULL;
        gen_unref(s, g);
    }
    pthread_mutex_destroy(&s->mu);
    close(s->lock_fd);
    free(s);
}

bool edge_store_has_state(const struct edge_store *s)
{
    return s->cur != NULL;
}

uint64_t edge_store_applied_index(const struct edge_store *s)
{
    return s->applied_index;
}

/* ---- snapshot load ------------------------------------------------------------ */

int edge_store_load_begin(struct edge_store *s, struct edge_store_load **out)
{
    struct edge_store_load *l = calloc(1, sizeof(*l));
    int rv;
    if (l == NULL) {
        return -ENOMEM;
    }
    l->s = s;
    remove_dir(s->new_path);
    if (mkdir(s->new_path, 0700) != 0) {
        rv = -errno;
        goto err_free;
    }
    char why[128];
    if ((rv = gen_open(s->new_path, s->map_size_mb, true, &l->gen, why, sizeof(why))) != 0) {
        TVMW_LOG_ERROR("store", "cannot create %s: %s", s->new_path, why);
        goto err_remove;
    }
    if ((rv = err_from_mdb(mdb_txn_begin(l->gen->env, NULL, 0, &l->txn))) != 0) {
        goto err_close;
    }
    *out = l;
    return 0;

err_close:
    gen_close(l->gen);
err_remove:
    remove_dir(s->new_path);
err_free:
    free(l);
    return rv;
}

int edge_store_load_put(void *load, unsigned db, const uint8_t *key, size_t key_len,
                        const uint8_t *value, size_t value_len)
{
    struct edge_store_load *l = load;
    if (db < EDGE_DB_MIN || db > EDGE_DB_MAX || key_len == 0 || key_len > EDGE_MAX_KEY_BYTES) {
        return TVMW_EMALFORMED;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val v = {.mv_size = value_len, .mv_data = (void *)value};
    /* The control plane streams each database in key order: appending
     * skips the page searches. A key out of order falls back to a put. */
    int rc = mdb_put(l->txn, l->gen->dbi[db], &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        rc = mdb_put(l->txn, l->gen->dbi[db], &k, &v, 0);
    }
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    int rv = edge_tcx_update(l->txn, &l->gen->tcxd, db, key, key_len, value, value_len, true);
    if (rv != 0) {
        return rv;
    }
    if (++l->in_txn >= LOAD_TXN_RECORDS) {
        /* The new environment is invisible until the swap: committing in
         * steps bounds the dirty pages of one transaction. */
        l->in_txn = 0;
        if ((rc = mdb_txn_commit(l->txn)) != 0 ||
            (rc = mdb_txn_begin(l->gen->env, NULL, 0, &l->txn)) != 0) {
            l->txn = NULL;
            return err_from_mdb(rc);
        }
    }
    return 0;
}

void edge_store_load_abort(struct edge_store_load *l)
{
    if (l == NULL) {
        return;
    }
    if (l->txn != NULL) {
        mdb_txn_abort(l->txn);
    }
    gen_close(l->gen);
    remove_dir(l->s->new_path);
    free(l);
}

/* Moves state.new to state, the old state (if any) out of the way. */
static int swap_dirs(struct edge_store *s, bool *old_at_new)
{
    *old_at_new = false;
    if (!exists(s->state_path)) {
        return rename(s->new_path, s->state_path) == 0 ? 0 : -errno;
    }
    if (renameat2(AT_FDCWD, s->new_path, AT_FDCWD, s->state_path, RENAME_EXCHANGE) == 0) {
        *old_at_new = true;
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS) {
        return -errno;
    }
    /* No atomic exchange on this file system: two renames; a crash in
     * between is finished by recover_dirs(). */
    remove_dir(s->old_path);
    if (rename(s->state_path, s->old_path) != 0) {
        return -errno;
    }
    if (rename(s->new_path, s->state_path) != 0) {
        int rv = -errno;
        rename(s->old_path, s->state_path);
        return rv;
    }
    return 0;
}

int edge_store_load_commit(struct edge_store_load *l, uint64_t index)
{
    struct edge_store *s = l->s;
    struct edge_store_gen *g = l->gen;
    char boot[64];
    uint8_t fmt[4];
    int rc;
    bool old_at_new;

    tvmw_boot_id(boot, sizeof(boot));
    tvmw_put_u32(fmt, STORE_FORMAT);
    /* The token check's account entries need the accounts and the
     * relations, which come in that order: derived once both are in. */
    uint64_t t0 = tvmw_now_ns();
    int xrv = edge_tcx_load_finish(l->txn, &g->tcxd);
    if (xrv != 0) {
        TVMW_LOG_ERROR("store", "cannot index the loaded accounts: %s", tvmw_strerror(xrv));
        edge_store_load_abort(l);
        return xrv;
    }
    TVMW_LOG_INFO("store", "token-check account index built took_ms=%llu",
                  (unsigned long long)((tvmw_now_ns() - t0) / 1000000));
    if ((rc = put_meta(l->txn, g->meta, "format", fmt, sizeof(fmt))) != 0 ||
        (rc = put_meta_u64(l->txn, g->meta, "applied_index", index)) != 0 ||
        (rc = put_meta_u64(l->txn, g->meta, "snapshot_index", index)) != 0 ||
        (rc = put_meta(l->txn, g->meta, "boot_id", boot, strlen(boot))) != 0 ||
        (rc = put_meta(l->txn, g->meta, "clean", "0", 1)) != 0) {
        goto err_abort;
    }
    rc = mdb_txn_commit(l->txn);
    l->txn = NULL;
    if (rc != 0) {
        goto err_abort;
    }
    /* Served from a plain (not WRITEMAP) environment: see gen_open. */
    char why[160];
    struct edge_store_gen *served;
    gen_close(g);
    l->gen = NULL;
    int rv = gen_open(s->new_path, s->map_size_mb, false, &served, why, sizeof(why));
    if (rv != 0) {
        TVMW_LOG_ERROR("store", "cannot reopen the loaded state: %s", why);
        edge_store_load_abort(l);
        return rv;
    }
    /* Serve it at once (LMDB does not care about the directory's name),
     * then make it durable and move it into place: a crash before the
     * rename leaves state.new, which the next start removes. At a million
     * accounts the sync writes about 1.3 GB. */
    pthread_mutex_lock(&s->mu);
    struct edge_store_gen *old = s->cur;
    s->cur = served;
    s->applied_index = index;
    atomic_fetch_add(&s->swap_seq, 1);
    atomic_fetch_add(&s->keys_seq, 1);
    pthread_mutex_unlock(&s->mu);
    free(l);
    uint64_t t1 = tvmw_now_ns();
    rc = mdb_env_sync(served->env, 1);
    if (rc == 0) {
        rv = swap_dirs(s, &old_at_new);
    }
    if (rc != 0 || rv != 0) {
        /* Still served; the next start downloads again. */
        TVMW_LOG_ERROR("store", "cannot keep the new state on disk: %s",
                       rc != 0 ? mdb_strerror(rc) : tvmw_strerror(rv));
        old_at_new = false;
    } else {
        TVMW_LOG_INFO("store", "state synced and in place took_ms=%llu",
                      (unsigned long long)((tvmw_now_ns() - t1) / 1000000));
    }
    if (old != NULL) {
        remove_dir(old_at_new ? s->new_path : s->old_path);
        gen_unref(s, old);
    }
    return 0;

err_abort:
    TVMW_LOG_ERROR("store", "cannot finish the snapshot load: %s", mdb_strerror(rc));
    edge_store_load_abort(l);
    return err_from_mdb(rc);
}

/* ---- feed --------------------------------------------------------------------- */

int edge_store_apply(struct edge_store *s, const struct edge_change *changes, size_t n,
                     uint64_t applied_index)
{
    struct edge_store_gen *g = s->cur;
    MDB_txn *txn;
    int rc, rv = 0;
    if (g == NULL) {
        return TVMW_ENOTFOUND;
    }
    if (applied_index < s->applied_index) {
        return TVMW_EMALFORMED;
    }
    if ((rc = mdb_txn_begin(g->env, NULL, 0, &txn)) != 0) {
        return err_from_mdb(rc);
    }
    bool keys = false;
    for (size_t i = 0; i < n && rv == 0; i++) {
        const struct edge_change *c = &changes[i];
        if (c->db < EDGE_DB_MIN || c->db > EDGE_DB_MAX || c->key_len == 0 ||
            c->key_len > EDGE_MAX_KEY_BYTES) {
            rv = TVMW_EMALFORMED;
            break;
        }
        MDB_val k = {.mv_size = c->key_len, .mv_data = (void *)c->key};
        if (c->del) {
            rc = mdb_del(txn, g->dbi[c->db], &k, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        } else {
            MDB_val v = {.mv_size = c->value_len, .mv_data = (void *)c->value};
            rc = mdb_put(txn, g->dbi[c->db], &k, &v, 0);
        }
        rv = err_from_mdb(rc);
        if (rv == 0) {
            /* The token check's index, in the same transaction. */
            rv = edge_tcx_update(txn, &g->tcxd, c->db, c->key, c->key_len, c->del ? NULL : c->value,
                                 c->value_len, false);
            keys = keys || edge_tcx_is_keys(c->db);
        }
    }
    if (rv == 0 && (rc = put_meta_u64(txn, g->meta, "applied_index", applied_index)) != 0) {
        rv = err_from_mdb(rc);
    }
    if (rv != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        return err_from_mdb(rc);
    }
    s->applied_index = applied_index;
    if (keys) {
        atomic_fetch_add(&s->keys_seq, 1);
    }
    return 0;
}

/* ---- readers ------------------------------------------------------------------- */

int edge_store_read_begin(struct edge_store *s, struct edge_read *r)
{
    pthread_mutex_lock(&s->mu);
    struct edge_store_gen *g = s->cur;
    if (g != NULL) {
        g->refs++;
    }
    pthread_mutex_unlock(&s->mu);
    if (g == NULL) {
        return TVMW_ENOTFOUND;
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(g->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        gen_unref(s, g);
        return err_from_mdb(rc);
    }
    MDB_val k = {.mv_size = 13, .mv_data = "applied_index"}, v;
    r->applied_index = 0;
    if (mdb_get(txn, g->meta, &k, &v) == 0 && v.mv_size == 8) {
        r->applied_index = tvmw_get_u64(v.mv_data);
    }
    r->txn = txn;
    r->gen = g;
    return 0;
}

int edge_store_get(const struct edge_read *r, unsigned db, const void *key, size_t key_len,
                   const uint8_t **value, size_t *value_len)
{
    if (db < EDGE_DB_MIN || db > EDGE_DB_MAX || key_len == 0 || key_len > EDGE_MAX_KEY_BYTES) {
        return TVMW_EMALFORMED;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key}, v;
    int rc = mdb_get(r->txn, r->gen->dbi[db], &k, &v);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    *value = v.mv_data;
    *value_len = v.mv_size;
    return 0;
}

int edge_store_scan(const struct edge_read *r, unsigned db, const void *prefix, size_t prefix_len,
                    const void *from, size_t from_len, edge_store_scan_cb cb, void *arg)
{
    if (db < EDGE_DB_MIN || db > EDGE_DB_MAX || prefix_len > EDGE_MAX_KEY_BYTES) {
        return TVMW_EMALFORMED;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(r->txn, r->gen->dbi[db], &cur);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    MDB_val k = {.mv_size = prefix_len, .mv_data = (void *)prefix}, v;
    if (from != NULL) {
        k.mv_size = from_len;
        k.mv_data = (void *)from;
    }
    MDB_cursor_op op = k.mv_size > 0 ? MDB_SET_RANGE : MDB_FIRST;
    int rv = 0;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (prefix_len > 0 &&
            (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)) {
            break;
        }
        if ((rv = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0) {
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        rv = err_from_mdb(rc);
    }
    return rv;
}

void edge_store_read_end(struct edge_store *s, struct edge_read *r)
{
    if (r->txn != NULL) {
        mdb_txn_abort(r->txn);
        r->txn = NULL;
    }
    if (r->gen != NULL) {
        gen_unref(s, r->gen);
        r->gen = NULL;
    }
}

/* ---- sticky readers ------------------------------------------------------------- */

int edge_store_sticky_begin(struct edge_store *s, struct edge_sticky *k)
{
    uint64_t seq = atomic_load_explicit(&s->swap_seq, memory_order_acquire);
    if (k->r.txn != NULL && k->seq == seq) {
        /* Same environment: take the newest committed state. LMDB keeps
         * the reader slot of a reset MDB_NOTLS transaction, so a renew
         * neither locks nor allocates. */
        int rc = mdb_txn_renew(k->r.txn);
        if (rc == 0 && (rc = mdb_cursor_renew(k->r.txn, k->rel_cur)) == 0) {
            return 0;
        }
        edge_store_sticky_close(s, k);
        return err_from_mdb(rc);
    }
    /* First use, or the store swapped in a snapshot: pin the current
     * generation (its lock is taken here only, once per swap). */
    edge_store_sticky_close(s, k);
    int rv = edge_store_read_begin(s, &k->r);
    if (rv != 0) {
        return rv;
    }
    k->seq = seq;
    for (unsigned x = 0; x < EDGE_TCX_N; x++) {
        k->tcx[x] = k->r.gen->tcx[x];
    }
    k->rel = k->r.gen->dbi[EDGE_DB_REL];
    int rc = mdb_cursor_open(k->r.txn, k->rel, &k->rel_cur);
    if (rc != 0) {
        k->rel_cur = NULL;
        edge_store_sticky_close(s, k);
        return err_from_mdb(rc);
    }
    return 0;
}

void edge_store_sticky_end(struct edge_sticky *k)
{
    if (k->r.txn != NULL) {
        mdb_txn_reset(k->r.txn);
    }
}

void edge_store_sticky_close(struct edge_store *s, struct edge_sticky *k)
{
    if (k->rel_cur != NULL) {
        mdb_cursor_close(k->rel_cur); /* before its environment may close */
        k->rel_cur = NULL;
    }
    if (k->r.txn != NULL || k->r.gen != NULL) {
        edge_store_read_end(s, &k->r);
    }
}

uint64_t edge_store_keys_seq(const struct edge_store *s)
{
    return atomic_load_explicit(&s->keys_seq, memory_order_acquire);
}

/* ---- keys ------------------------------------------------------------------------ */

size_t edge_uniq_key(const char *index, uint64_t client_id, const char *value, char *out)
{
    int n = snprintf(out, EDGE_MAX_KEY_BYTES + 1, "%s/%" PRIu64 "/%s", index, client_id, value);
    if (n > EDGE_MAX_KEY_BYTES) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)value, strlen(value), md);
        n = snprintf(out, EDGE_MAX_KEY_BYTES + 1, "%s/%" PRIu64 "/#", index, client_id);
        for (int i = 0; i < SHA256_DIGEST_LENGTH && n > 0 && n < EDGE_MAX_KEY_BYTES; i++) {
            n += snprintf(out + n, (size_t)(EDGE_MAX_KEY_BYTES + 1 - n), "%02x", md[i]);
        }
    }
    if (n <= 0 || n > EDGE_MAX_KEY_BYTES) {
        return 0;
    }
    return (size_t)n;
}
