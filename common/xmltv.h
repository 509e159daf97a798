/*
 * Streaming XMLTV reader (libxml2's xmlTextReader), for EPG imports.
 *
 * The input is a file descriptor holding an XMLTV document, plain or gzip
 * (detected by its magic bytes, several gzip members allowed). The reader
 * never holds more than one <programme> in memory, so a file of any size
 * parses in a small, fixed amount of memory; each complete programme and
 * channel is handed to a callback.
 *
 * Untrusted input (STYLE.md): the parser runs with XML_PARSE_NONET and
 * without XML_PARSE_NOENT, XML_PARSE_DTDLOAD and XML_PARSE_HUGE, so no
 * external entity or DTD is ever loaded and libxml2's own size limits stay
 * on; on top of that a document is refused (TVMW_EMALFORMED, a one-line
 * reason with its line number in err) when it
 *   - is not well-formed XML, is truncated, or is not in the encoding it
 *     declares (libxml2's fatal errors);
 *   - declares entities in an internal DTD subset or refers to any entity
 *     other than the five predefined ones (billion laughs, external
 *     entities);
 *   - nests elements deeper than TVMW_XMLTV_MAX_DEPTH;
 *   - has a root element other than <tv>;
 *   - decompresses to more than limits->max_xml_bytes (TVMW_ETOOBIG), or is
 *     a broken or truncated gzip stream.
 * A programme that is well-formed XML but unusable (no or bad start time,
 * no channel, no title, an attribute over TVMW_XMLTV_MAX_ATTR_BYTES) is
 * skipped: cbs->skipped hears why, and parsing goes on. Text longer than
 * its field's limit is cut at a UTF-8 character boundary.
 *
 * Threads: any thread; one parse per call. tvmw_xmltv_init() initialises
 * libxml2 once per process and installs an external-entity loader that
 * refuses everything (parse calls it too).
 */
#ifndef TVMW_COMMON_XMLTV_H
#define TVMW_COMMON_XMLTV_H

#include <stddef.h>
#include <stdint.h>

#define TVMW_XMLTV_MAX_DEPTH      16   /* tv/programme/credits/actor is 4 */
#define TVMW_XMLTV_MAX_ATTR_BYTES 4096 /* one attribute value */
#define TVMW_XMLTV_MAX_ID_BYTES   255  /* channel ids */
#define TVMW_XMLTV_TITLE_BYTES    512  /* title, sub-title */
#define TVMW_XMLTV_DESC_BYTES     8192
#define TVMW_XMLTV_SHORT_BYTES    255 /* category, rating, date, episode-num, lang */
#define TVMW_XMLTV_URL_BYTES      1024

/* A programme as read; strings are UTF-8, never NULL ("" when absent),
 * borrowed for the duration of the callback. */
struct tvmw_xmltv_programme {
    const char *channel; /* the channel attribute */
    int64_t start_s;     /* Unix seconds (the zone applied) */
    int64_t stop_s;      /* 0 when the programme has no stop attribute */
    const char *title;   /* the first <title> */
    const char *title_lang;
    const char *sub_title;
    const char *desc;
    const char *category; /* the first <category> */
    const char *icon;     /* <icon src> */
    const char *rating;   /* <rating><value> */
    const char *date;     /* <date> */
    const char *episode_xmltv_ns;
    const char *episode_onscreen;
    unsigned long line; /* where the <programme> started */
};

struct tvmw_xmltv_channel {
    const char *id;
    const char *display_name; /* the first one */
    const char *icon;
    unsigned long line;
};

/* A non-zero return stops the parse; tvmw_xmltv_parse_fd returns it. */
typedef int (*tvmw_xmltv_programme_cb)(void *arg, const struct tvmw_xmltv_programme *p);
typedef int (*tvmw_xmltv_channel_cb)(void *arg, const struct tvmw_xmltv_channel *c);
typedef void (*tvmw_xmltv_skipped_cb)(void *arg, unsigned long line, const char *why);
/* bytes_in: read from fd so far; bytes_xml: after decompression. */
typedef void (*tvmw_xmltv_progress_cb)(void *arg, uint64_t bytes_in, uint64_t bytes_xml);

struct tvmw_xmltv_cbs {
    tvmw_xmltv_programme_cb programme; /* required */
    tvmw_xmltv_channel_cb channel;     /* may be NULL */
    tvmw_xmltv_skipped_cb skipped;     /* may be NULL */
    tvmw_xmltv_progress_cb progress;   /* may be NULL */
    void *arg;
};

struct tvmw_xmltv_limits {
    uint64_t max_xml_bytes;        /* decompressed document; 0: no limit */
    uint64_t progress_every_bytes; /* of XML; 0: never */
};

struct tvmw_xmltv_stats {
    uint64_t bytes_in;
    uint64_t bytes_xml;
    uint64_t channels;
    uint64_t programmes; /* handed to the callback */
    uint64_t skipped;
    int gzip; /* the input was gzip */
};

void tvmw_xmltv_init(void);

/* Parses the document readable from fd (from its current offset) as
 * described above. *st is filled also on failure. Returns 0,
 * TVMW_EMALFORMED, TVMW_ETOOBIG, TVMW_EIO (read error; err says why), or
 * the first non-zero return of a callback. */
int tvmw_xmltv_parse_fd(int fd, const struct tvmw_xmltv_limits *limits,
                        const struct tvmw_xmltv_cbs *cbs, struct tvmw_xmltv_stats *st, char *err,
                        size_t err_len);

/* An XMLTV time: "YYYYmmddHHMMSS +HHMM" and the truncated forms the DTD
 * allows (YYYYmmdd, YYYYmmddHH, YYYYmmddHHMM), with an optional zone
 * (numeric, "UTC", "GMT" or "Z"; none means UTC). 0 or TVMW_EMALFORMED. */
int tvmw_xmltv_parse_time(const char *s, int64_t *out);

#endif
