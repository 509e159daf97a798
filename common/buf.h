/*
 * Growable byte buffer, always NUL-terminated, with a hard maximum.
 */
#ifndef TVMW_COMMON_BUF_H
#define TVMW_COMMON_BUF_H

#include <stddef.h>

struct tvmw_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* appends past this fail with TVMW_ETOOBIG; 0 = no limit */
};

void tvmw_buf_init(struct tvmw_buf *b, size_t max);
void tvmw_buf_close(struct tvmw_buf *b);
/* Makes room for n more bytes (and the NUL) without changing the content. */
int tvmw_buf_reserve(struct tvmw_buf *b, size_t n);
int tvmw_buf_append(struct tvmw_buf *b, const void *p, size_t n);
int tvmw_buf_printf(struct tvmw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data out; the buffer is empty afterwards. Free with free(). */
char *tvmw_buf_detach(struct tvmw_buf *b, size_t *len);

#endif
