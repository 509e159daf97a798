/*
 * libFuzzer target for the XMLTV reader (common/xmltv.h): any bytes, plain
 * or gzip, must parse or be refused with an error, within the limits,
 * without a crash, a leak or undefined behaviour.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/xmltv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_programme(void *arg, const struct tvmw_xmltv_programme *p)
{
    size_t *n = arg;
    /* Touch every field: they must be NUL-terminated strings. */
    *n += strlen(p->channel) + strlen(p->title) + strlen(p->sub_title) + strlen(p->desc) +
          strlen(p->category) + strlen(p->icon) + strlen(p->rating) + strlen(p->date) +
          strlen(p->episode_xmltv_ns) + strlen(p->episode_onscreen) + strlen(p->title_lang);
    return 0;
}

static int on_channel(void *arg, const struct tvmw_xmltv_channel *c)
{
    size_t *n = arg;
    *n += strlen(c->id) + strlen(c->display_name) + strlen(c->icon);
    return 0;
}

static void on_skipped(void *arg, unsigned long line, const char *why)
{
    size_t *n = arg;
    *n += line + strlen(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("xmltv", 0);
    if (fd < 0) {
        return 0;
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    size_t n = 0;
    struct tvmw_xmltv_limits lim = {.max_xml_bytes = 4u << 20};
    struct tvmw_xmltv_cbs cbs = {
        .programme = on_programme, .channel = on_channel, .skipped = on_skipped, .arg = &n};
    struct tvmw_xmltv_stats st;
    char err[256];
    tvmw_xmltv_parse_fd(fd, &lim, &cbs, &st, err, sizeof(err));
    close(fd);
    int64_t t;
    char text[32];
    size_t k = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, k);
    text[k] = '\0';
    tvmw_xmltv_parse_time(text, &t);
    return 0;
}
