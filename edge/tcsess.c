/*
 * Per-account live session slots shared by the request threads through
 * atomics; see tcsess.h.
 *
 * A slot is one 64-bit word, claimed and refreshed by compare-and-swap:
 * the session key's top 40 bits (never zero) and the low 24 bits of the
 * second it was last seen. Keeping both in one word is what makes the
 * limit hold under races: a thread that claims a slot publishes the key
 * and its fresh time at once, so any thread that counts after it sees a
 * live session, never a new key with a stale time.
 */
#include "edge/tcsess.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TIME_BITS 24
#define TIME_MASK ((1u << TIME_BITS) - 1)

struct entry {
    _Atomic uint64_t account; /* 0: never used */
    _Atomic uint64_t slot[EDGE_TCS_SLOTS];
};

struct edge_tcs {
    size_t mask;
    struct entry *e;
};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int edge_tcs_new(size_t accounts, struct edge_tcs **out)
{
    size_t n = 64;
    while (n < accounts && n < ((size_t)1 << 40)) {
        n <<= 1;
    }
    struct edge_tcs *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->e = calloc(n, sizeof(*t->e)); /* all-zero atomics are valid zeros */
    if (t->e == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->mask = n - 1;
    *out = t;
    return 0;
}

void edge_tcs_free(struct edge_tcs *t)
{
    if (t != NULL) {
        free(t->e);
        free(t);
    }
}

static uint64_t word_of(uint64_t key, uint32_t now_s)
{
    uint64_t k = mix(key) & ~(uint64_t)TIME_MASK; /* mixed: any distinct keys spread */
    if ((k >> TIME_BITS) == 0) {
        k = (uint64_t)1 << TIME_BITS;
    }
    return k | (now_s & TIME_MASK);
}

static bool same_key(uint64_t w, uint64_t mine)
{
    return w != 0 && (w & ~(uint64_t)TIME_MASK) == (mine & ~(uint64_t)TIME_MASK);
}

static bool live(uint64_t w, uint32_t now_s, uint32_t live_s)
{
    return w != 0 && ((now_s - (uint32_t)w) & TIME_MASK) <= live_s;
}

static bool stale(struct entry *e, uint32_t now_s, uint32_t live_s)
{
    for (unsigned i = 0; i < EDGE_TCS_SLOTS; i++) {
        if (live(atomic_load(&e->slot[i]), now_s, live_s)) {
            return false;
        }
    }
    return true;
}

/* The account's entry, claiming a free or stale one if it has none. */
static struct entry *entry_of(struct edge_tcs *t, uint64_t account, uint32_t now_s, uint32_t live_s,
                              bool claim)
{
    size_t h = (size_t)mix(account);
    for (unsigned i = 0; i < EDGE_TCS_PROBE; i++) {
        struct entry *e = &t->e[(h + i) & t->mask];
        if (atomic_load(&e->account) == account) {
            return e;
        }
    }
    if (!claim) {
        return NULL;
    }
    for (unsigned i = 0; i < EDGE_TCS_PROBE; i++) {
        struct entry *e = &t->e[(h + i) & t->mask];
        uint64_t a = atomic_load(&e->account);
        if ((a == 0 || stale(e, now_s, live_s)) &&
            atomic_compare_exchange_strong(&e->account, &a, account)) {
            return e;
        }
        if (a == account) {
            return e; /* another thread claimed it for this account meanwhile */
        }
    }
    return NULL;
}

/* Live sessions in e other than `mine` (slot index, or -1). */
static unsigned others(struct entry *e, int mine, uint32_t now_s, uint32_t live_s)
{
    unsigned n = 0;
    for (int i = 0; i < EDGE_TCS_SLOTS; i++) {
        if (i != mine && live(atomic_load(&e->slot[i]), now_s, live_s)) {
            n++;
        }
    }
    return n;
}

enum edge_tcs_result edge_tcs_touch(struct edge_tcs *t, uint64_t account, uint64_t key,
                                    uint32_t now_s, uint32_t live_s, unsigned limit, bool is_new)
{
    struct entry *e = entry_of(t, account, now_s, live_s, true);
    if (e == NULL) {
        return EDGE_TCS_UNTRACKED;
    }
    uint64_t want = word_of(key, now_s);
    /* Known session: refresh it (a repeated start is the same session). */
    for (int i = 0; i < EDGE_TCS_SLOTS; i++) {
        uint64_t w = atomic_load(&e->slot[i]);
        if (same_key(w, want) && atomic_compare_exchange_strong(&e->slot[i], &w, want)) {
            return EDGE_TCS_OK;
        }
    }
    if (is_new && limit > 0 && others(e, -1, now_s, live_s) >= limit) {
        return EDGE_TCS_OVER;
    }
    for (int i = 0; i < EDGE_TCS_SLOTS; i++) {
        uint64_t w = atomic_load(&e->slot[i]);
        if (live(w, now_s, live_s) || !atomic_compare_exchange_strong(&e->slot[i], &w, want)) {
            continue;
        }
        /* Claimed. Count again: a session of this account that claimed a
         * slot at the same time is visible now, or it sees this one. */
        bool over = is_new && limit > 0 && others(e, i, now_s, live_s) >= limit;
        if (over || atomic_load(&e->account) != account) {
            uint64_t mine = want;
            atomic_compare_exchange_strong(&e->slot[i], &mine, 0);
            return over ? EDGE_TCS_OVER : EDGE_TCS_UNTRACKED;
        }
        return EDGE_TCS_OK;
    }
    return EDGE_TCS_UNTRACKED;
}

unsigned edge_tcs_count(struct edge_tcs *t, uint64_t account, uint32_t now_s, uint32_t live_s)
{
    struct entry *e = entry_of(t, account, now_s, live_s, false);
    return e != NULL ? others(e, -1, now_s, live_s) : 0;
}
