#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static char log_node[32] = "-";
static enum tvmw_log_level log_level = TVMW_LOG_LEVEL_INFO;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void tvmw_log_init(const char *node, enum tvmw_log_level level)
{
    snprintf(log_node, sizeof(log_node), "%s", node);
    log_level = level;
}

int tvmw_log_level_parse(const char *s, enum tvmw_log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum tvmw_log_level)i;
            return 0;
        }
    }
    return -1;
}

int tvmw_log_enabled(enum tvmw_log_level level)
{
    return level <= log_level;
}

void tvmw_log(enum tvmw_log_level level, const char *comp, const char *fmt, ...)
{
    if (level > log_level) {
        return;
    }
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s node=%s comp=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_node, comp);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2; /* truncated: keep the line whole */
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
