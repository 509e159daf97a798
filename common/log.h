/*
 * Logging: one line per event on stderr,
 *   2026-11-23T12:00:00.123Z INFO node=1 comp=raft msg... key=value
 * Thread-safe (one fprintf per line). Never pass secrets.
 */
#ifndef TVMW_COMMON_LOG_H
#define TVMW_COMMON_LOG_H

enum tvmw_log_level {
    TVMW_LOG_LEVEL_ERROR,
    TVMW_LOG_LEVEL_WARN,
    TVMW_LOG_LEVEL_INFO,
    TVMW_LOG_LEVEL_DEBUG
};

/* Set once at start-up, before any thread starts. */
void tvmw_log_init(const char *node, enum tvmw_log_level level);
int tvmw_log_level_parse(const char *s, enum tvmw_log_level *out);
int tvmw_log_enabled(enum tvmw_log_level level);

void tvmw_log(enum tvmw_log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TVMW_LOG_ERROR(comp, ...) tvmw_log(TVMW_LOG_LEVEL_ERROR, comp, __VA_ARGS__)
#define TVMW_LOG_WARN(comp, ...)  tvmw_log(TVMW_LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define TVMW_LOG_INFO(comp, ...)  tvmw_log(TVMW_LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define TVMW_LOG_DEBUG(comp, ...)                                                                  \
    do {                                                                                           \
        if (tvmw_log_enabled(TVMW_LOG_LEVEL_DEBUG)) {                                              \
            tvmw_log(TVMW_LOG_LEVEL_DEBUG, comp, __VA_ARGS__);                                     \
        }                                                                                          \
    } while (0)

#endif
