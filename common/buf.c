#include "common/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void tvmw_buf_init(struct tvmw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void tvmw_buf_close(struct tvmw_buf *b)
{
    free(b->data);
    tvmw_buf_init(b, b->max);
}

int tvmw_buf_reserve(struct tvmw_buf *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len - 1) {
        return TVMW_ETOOBIG;
    }
    size_t need = b->len + n + 1;
    if (b->max != 0 && b->len + n > b->max) {
        return TVMW_ETOOBIG;
    }
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int tvmw_buf_append(struct tvmw_buf *b, const void *p, size_t n)
{
    int rv = tvmw_buf_reserve(b, n);
    if (rv != 0) {
        return rv;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int tvmw_buf_printf(struct tvmw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return TVMW_EMALFORMED;
    }
    int rv = tvmw_buf_reserve(b, (size_t)n);
    if (rv != 0) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *tvmw_buf_detach(struct tvmw_buf *b, size_t *len)
{
    if (b->data == NULL && tvmw_buf_reserve(b, 0) != 0) {
        return NULL;
    }
    char *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    tvmw_buf_init(b, b->max);
    return p;
}
