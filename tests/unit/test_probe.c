/* The health decision of the streaming-service prober (controlplane/probe.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "controlplane/probe.h"

/* Feeds results ("+" ok, "-" failure) and returns the health after each. */
static void run(enum cp_health start, const char *results, unsigned down_after, unsigned up_after,
                enum cp_health *out)
{
    unsigned fails = 0, oks = 0;
    enum cp_health h = start;
    for (size_t i = 0; results[i] != '\0'; i++) {
        h = cp_probe_decide(h, results[i] == '+', &fails, &oks, down_after, up_after);
        out[i] = h;
    }
}

/* Defaults (down 1, up 2): down at the first failure, up after two. */
static void test_defaults(void **state)
{
    (void)state;
    enum cp_health h[8];
    run(CP_HEALTH_UP, "-++-+++", 1, 2, h);
    assert_int_equal(h[0], CP_HEALTH_DOWN);
    assert_int_equal(h[1], CP_HEALTH_DOWN); /* one success is not enough */
    assert_int_equal(h[2], CP_HEALTH_UP);
    assert_int_equal(h[3], CP_HEALTH_DOWN);
    assert_int_equal(h[4], CP_HEALTH_DOWN);
    assert_int_equal(h[5], CP_HEALTH_UP);
    assert_int_equal(h[6], CP_HEALTH_UP);
}

/* Failures must be consecutive: a success in between starts over. */
static void test_consecutive(void **state)
{
    (void)state;
    enum cp_health h[8];
    run(CP_HEALTH_UP, "--+---", 3, 1, h);
    assert_int_equal(h[0], CP_HEALTH_UP);
    assert_int_equal(h[1], CP_HEALTH_UP);
    assert_int_equal(h[2], CP_HEALTH_UP);
    assert_int_equal(h[3], CP_HEALTH_UP);
    assert_int_equal(h[4], CP_HEALTH_UP);
    assert_int_equal(h[5], CP_HEALTH_DOWN);
}

/* "unknown" (a new service, or one never probed) stays until a threshold
 * is reached; the stored health is where a new leader starts from. */
static void test_unknown_and_stored(void **state)
{
    (void)state;
    enum cp_health h[4];
    run(CP_HEALTH_UNKNOWN, "++", 1, 2, h);
    assert_int_equal(h[0], CP_HEALTH_UNKNOWN);
    assert_int_equal(h[1], CP_HEALTH_UP);
    run(CP_HEALTH_UNKNOWN, "-", 2, 1, h);
    assert_int_equal(h[0], CP_HEALTH_UNKNOWN);
    run(CP_HEALTH_DOWN, "+", 1, 2, h); /* a new leader does not flip it at once */
    assert_int_equal(h[0], CP_HEALTH_DOWN);
}

/* Counters saturate instead of wrapping round to 0. */
static void test_saturation(void **state)
{
    (void)state;
    unsigned fails = ~0u, oks = 0;
    assert_int_equal(cp_probe_decide(CP_HEALTH_DOWN, false, &fails, &oks, 1, 1), CP_HEALTH_DOWN);
    assert_int_equal(fails, ~0u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_consecutive),
        cmocka_unit_test(test_unknown_and_stored),
        cmocka_unit_test(test_saturation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
