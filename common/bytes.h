/*
 * Little-endian field encoding with bounds-checked cursors, for commands,
 * records and snapshots. Never memcpy a struct to disk or wire.
 */
#ifndef TVMW_COMMON_BYTES_H
#define TVMW_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void tvmw_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void tvmw_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void tvmw_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint16_t tvmw_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t tvmw_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint64_t tvmw_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Big-endian u64, used for LMDB keys so that byte order is numeric order. */
static inline void tvmw_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static inline uint64_t tvmw_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Big-endian u16 and u32 (signed credentials, edge/dauth.h). */
static inline void tvmw_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t tvmw_get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void tvmw_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

static inline uint32_t tvmw_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A read cursor over untrusted bytes: every get checks the remaining length. */
struct tvmw_cursor {
    const uint8_t *p;
    size_t left;
};

static inline int tvmw_cursor_get_u32(struct tvmw_cursor *c, uint32_t *out)
{
    if (c->left < 4) {
        return -1;
    }
    *out = tvmw_get_u32(c->p);
    c->p += 4;
    c->left -= 4;
    return 0;
}

static inline int tvmw_cursor_get_u64(struct tvmw_cursor *c, uint64_t *out)
{
    if (c->left < 8) {
        return -1;
    }
    *out = tvmw_get_u64(c->p);
    c->p += 8;
    c->left -= 8;
    return 0;
}

static inline int tvmw_cursor_get_bytes(struct tvmw_cursor *c, size_t n, const uint8_t **out)
{
    if (c->left < n) {
        return -1;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

#endif
