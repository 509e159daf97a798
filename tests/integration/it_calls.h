/*
 * Calls the device-side integration tests share: admin API and Billing API
 * requests that must succeed (the test fails with the answer otherwise).
 */
#ifndef TVMW_TESTS_INTEGRATION_IT_CALLS_H
#define TVMW_TESTS_INTEGRATION_IT_CALLS_H

#include <jansson.h>

#include "harness.h"
#include "it_billing.h"

/* The integer member key of o; -999 when absent or not an integer. */
long long it_jint(const json_t *o, const char *key);
/* An admin request to node 1 that must answer `want`; *out (if not NULL)
 * gets the body (a new reference). */
void it_admin_expect(struct it_cluster *c, const char *method, const char *path, const char *body,
                     long want, json_t **out);
/* POST path (201), returns the new object's id (its JSON under `key`). */
long long it_admin_create(struct it_cluster *c, const char *path, const char *key,
                          const char *body);
/* A Billing API call that must answer error 0, retried on 503 or no
 * answer over the nodes 1..3; returns the reply (a new reference). */
json_t *it_billing_ok(struct it_cluster *c, const struct it_bl_client *client, const char *path,
                      const char *const *kv);

#endif
