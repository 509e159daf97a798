/*
 * The constants of the edge protocol (docs/edge-protocol.md): database ids
 * of the projection, the snapshot framing and the limits an edge enforces
 * on what a control-plane node sends it. Types and constants only.
 */
#ifndef TVMW_EDGE_PROTO_H
#define TVMW_EDGE_PROTO_H

/* Projected databases, by the id the snapshot and the feed carry. */
enum edge_db {
    EDGE_DB_CLIENTS = 1,
    EDGE_DB_CUSTOMERS = 2,
    EDGE_DB_ACCOUNTS = 3,
    EDGE_DB_DEVICES = 4,
    EDGE_DB_TARIFFS = 5,
    EDGE_DB_MESSAGES = 6,
    EDGE_DB_CHANNELS = 7,
    EDGE_DB_CATEGORIES = 8,
    EDGE_DB_DATACENTERS = 9,
    EDGE_DB_SERVICES = 10,
    EDGE_DB_REL = 11,
    EDGE_DB_UNIQ = 12,
    EDGE_DB_KEYS = 13,         /* token signing keys (cluster-wide) */
    EDGE_DB_DSESS = 14,        /* device sessions: be64 account, be64 sess_id */
    EDGE_DB_ACC_SETTINGS = 15, /* per-account favourites, locks, order */
    EDGE_DB_PROGRAMS = 16,     /* EPG: be64 channel, be64 begin time */
};
#define EDGE_DB_MIN 1
#define EDGE_DB_MAX 16

/* Snapshot framing, little-endian:
 *   header  "TVMWESN1", u32 version, u32 0, u64 index, u64 0
 *   record  u8 1, u8 db, u32 key length, u32 value length, key, value
 *   end     u8 0xFF, u64 number of records
 *   trailer SHA-256 of every byte before it */
#define EDGE_SNAPSHOT_MAGIC        "TVMWESN1"
#define EDGE_SNAPSHOT_VERSION      1
#define EDGE_SNAPSHOT_HEADER_SIZE  32
#define EDGE_SNAPSHOT_RECORD_TAG   0x01
#define EDGE_SNAPSHOT_END_TAG      0xFF
#define EDGE_SNAPSHOT_RECORD_HEAD  9 /* after the tag: db, key length, value length */
#define EDGE_SNAPSHOT_TRAILER_SIZE 32

/* LMDB's default maximum key size: a longer key could not be stored, so
 * it is refused as corrupt before anything is allocated for it. */
#define EDGE_MAX_KEY_BYTES 511
/* The largest record value an edge accepts (an account with many devices
 * is a few KiB; a channel list entry less). */
#define EDGE_MAX_VALUE_BYTES (16u << 20)

#endif
