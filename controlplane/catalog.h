/*
 * The catalogue of a client (tenant): channels, categories, datacenters
 * and streaming services, and which channels and services each tariff
 * carries. Managed through the admin API (docs/admin-api.md); applied by
 * the state machine as CP_CMD_CATALOG commands.
 *
 * Payload: {"client_id", "kind", "op": "put"|"delete"|"link", "id",
 *           "fields": {...}  (put; id 0 creates)
 *           "ids": [...]     (link: the whole new set for the tariff)}
 * Kinds: "channels", "categories", "datacenters", "streaming-services",
 * and for "link": "tariff-channels", "tariff-streaming-services".
 */
#ifndef TVMW_CONTROLPLANE_CATALOG_H
#define TVMW_CONTROLPLANE_CATALOG_H

#include <jansson.h>
#include <lmdb.h>

#include "controlplane/fsm.h"

#define CP_REL_TAR_SVC "tar_svc" /* tariff -> streaming service */

/* The LMDB database of a catalogue kind, or -1 for an unknown kind. */
int cp_catalog_dbi(const struct cp_dbs *db, const char *kind, MDB_dbi *out);
/* Checks fields against the kind's schema (also run again in apply).
 * create: required fields must be present. NULL if fine, else a message. */
const char *cp_catalog_check(const char *kind, json_t *fields, int create);
/* JSON key of one object of a kind ("channel", "streaming_service", ...). */
const char *cp_catalog_singular(const char *kind);

int cp_catalog_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);
/* Reads for the admin API: all objects of a kind of one client, or one. */
int cp_catalog_list(struct cp_fsm *f, uint64_t client_id, const char *kind, json_t **out);
int cp_catalog_get(struct cp_fsm *f, uint64_t client_id, const char *kind, uint64_t id,
                   json_t **out);
/* The ids linked to a tariff ("tariff-channels" / "tariff-streaming-services"). */
int cp_catalog_links(struct cp_fsm *f, uint64_t client_id, const char *kind, uint64_t tariff,
                     json_t **out);

#endif
