/*
 * cmocka glue for the integration tests: cmocka's includes in the order it
 * needs them, an assertion with a formatted reason, and the bookkeeping
 * that tells it_cluster_free whether every test passed (cmocka does not
 * tell a teardown whether its test failed).
 *
 * Usage: each test body ends with it_test_ok(); run the tests with
 * it_test_setup/it_test_teardown as per-test fixtures and free the cluster
 * in the group teardown with it_group_done(cluster) first.
 */
#ifndef TVMW_TESTS_INTEGRATION_IT_CMOCKA_H
#define TVMW_TESTS_INTEGRATION_IT_CMOCKA_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "harness.h"

/* Fails the running test (cmocka longjmps out) with a formatted reason. */
#define IT_ASSERT(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "ASSERTION FAILED at %s:%d: %s\n    ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            fail_msg("%s", #cond);                                                                 \
        }                                                                                          \
    } while (0)

/* Asserts the status of an answer, printing the body on a mismatch. */
#define IT_ASSERT_STATUS(resp, want)                                                               \
    IT_ASSERT((resp)->status == (want), "expected HTTP %d, got %ld: %.400s%s", (int)(want),        \
              (resp)->status, (resp)->body ? (resp)->body : "", (resp)->error)

/* Asserts an error answer: status, JSON body with "error" == code and a
 * "message" string. */
#define IT_ASSERT_ERROR(resp, want, code)                                                          \
    do {                                                                                           \
        IT_ASSERT_STATUS(resp, want);                                                              \
        IT_ASSERT((resp)->json != NULL, "error body is not JSON (%zu bytes): %.400s", (resp)->len, \
                  (resp)->body);                                                                   \
        IT_ASSERT(it_resp_str(resp, "error") != NULL &&                                            \
                      strcmp(it_resp_str(resp, "error"), code) == 0,                               \
                  "expected error \"%s\", got %s", code, (resp)->body);                            \
        IT_ASSERT(it_resp_str(resp, "message") != NULL, "no message in %s", (resp)->body);         \
    } while (0)

static bool it_current_ok;
static bool it_any_failed;

static inline int it_test_setup(void **state)
{
    (void)state;
    it_current_ok = false;
    return 0;
}

static inline int it_test_teardown(void **state)
{
    (void)state;
    if (!it_current_ok) {
        it_any_failed = true;
    }
    return 0;
}

static inline void it_test_ok(void)
{
    it_current_ok = true;
}

/* Marks the cluster passed if no test failed. */
static inline void it_group_done(struct it_cluster *c)
{
    if (c != NULL && !it_any_failed) {
        it_cluster_pass(c);
    }
}

#endif
