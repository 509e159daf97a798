/*
 * tvmwctl sample-data: a realistic demo bundle (format at the top of tvmwctl_import.c) for a
 * client: 3 datacenters with a Flussonic and an Astra service each, 12 categories, N channels,
 * 6 tariffs (3 basic ones that carry most channels, 3 additional ones by category) and
 * customers with Russian or English names, 1-2 accounts each (abonements 1000001 and up) and
 * 0-2 devices per account.
 *
 * The same seed gives the same bytes. The bundle is written as it is generated, one customer
 * per line and nothing of it kept, so a million accounts take about a second and no memory.
 * The number of accounts and devices of each customer comes from a generator of its own, run
 * once ahead to write "counts" before the data.
 */
#include "controlplane/ctl/tvmwctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_DEFAULT_ACCOUNTS 50
#define SAMPLE_DEFAULT_CHANNELS 200
#define SAMPLE_FIRST_ABONEMENT  1000001u
#define SAMPLE_OUT_BUFFER       (1u << 20)
#define NELEMS(a)               (sizeof(a) / sizeof((a)[0]))

/* ---- deterministic random numbers (splitmix64) ---------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n); /* the bias is far below what a demo can show */
}

static bool rng_percent(struct rng *r, unsigned percent)
{
    return rng_below(r, 100) < percent;
}

/* ---- sample data tables --------------------------------------------------------------------- */

enum {
    CAT_FEDERAL,
    CAT_NEWS,
    CAT_SPORTS,
    CAT_MOVIES,
    CAT_SERIES,
    CAT_KIDS,
    CAT_MUSIC,
    CAT_DOCUMENTARY,
    CAT_ENTERTAINMENT,
    CAT_REGIONAL,
    CAT_EDUCATION,
    CAT_LIFESTYLE,
    CAT_COUNT
};

static const struct {
    const char *key;
    const char *name;
    const char *slug; /* for generated channel names */
} categories[CAT_COUNT] = {
    {"cat-federal", "Federal", "federal"},
    {"cat-news", "News", "news"},
    {"cat-sports", "Sports", "sports"},
    {"cat-movies", "Movies", "movies"},
    {"cat-series", "Series", "series"},
    {"cat-kids", "Kids", "kids"},
    {"cat-music", "Music", "music"},
    {"cat-documentary", "Documentary", "documentary"},
    {"cat-entertainment", "Entertainment", "entertainment"},
    {"cat-regional", "Regional", "regional"},
    {"cat-education", "Education", "education"},
    {"cat-lifestyle", "Lifestyle", "lifestyle"},
};

static const struct {
    const char *name;
    const char *slug;
    int category;
} base_channels[] = {
    {"Первый канал", "perviy", CAT_FEDERAL},
    {"Россия 1", "russia1", CAT_FEDERAL},
    {"НТВ", "ntv", CAT_FEDERAL},
    {"Пятый канал", "5kanal", CAT_FEDERAL},
    {"Россия К", "russiak", CAT_FEDERAL},
    {"Россия 24", "russia24", CAT_NEWS},
    {"Карусель", "karusel", CAT_KIDS},
    {"ОТР", "otr", CAT_FEDERAL},
    {"ТВ Центр", "tvc", CAT_FEDERAL},
    {"РЕН ТВ", "rentv", CAT_ENTERTAINMENT},
    {"Спас", "spas", CAT_FEDERAL},
    {"СТС", "sts", CAT_ENTERTAINMENT},
    {"Домашний", "domashniy", CAT_LIFESTYLE},
    {"ТВ-3", "tv3", CAT_ENTERTAINMENT},
    {"Пятница!", "friday", CAT_ENTERTAINMENT},
    {"Звезда", "zvezda", CAT_FEDERAL},
    {"Мир", "mir", CAT_FEDERAL},
    {"ТНТ", "tnt", CAT_ENTERTAINMENT},
    {"Муз-ТВ", "muztv", CAT_MUSIC},
    {"Матч ТВ", "matchtv", CAT_SPORTS},
    {"РБК", "rbc", CAT_NEWS},
    {"Известия", "izvestia", CAT_NEWS},
    {"Euronews", "euronews", CAT_NEWS},
    {"BBC World News", "bbcworld", CAT_NEWS},
    {"CNN International", "cnn", CAT_NEWS},
    {"DW", "dw", CAT_NEWS},
    {"France 24", "france24", CAT_NEWS},
    {"Матч! Футбол 1", "match-football1", CAT_SPORTS},
    {"Матч! Футбол 2", "match-football2", CAT_SPORTS},
    {"Матч! Арена", "match-arena", CAT_SPORTS},
    {"Матч! Игра", "match-igra", CAT_SPORTS},
    {"Eurosport 1", "eurosport1", CAT_SPORTS},
    {"Eurosport 2", "eurosport2", CAT_SPORTS},
    {"Setanta Sports", "setanta", CAT_SPORTS},
    {"Дом кино", "domkino", CAT_MOVIES},
    {"Кинопремьера", "kinopremiera", CAT_MOVIES},
    {"TV1000", "tv1000", CAT_MOVIES},
    {"TV1000 Action", "tv1000action", CAT_MOVIES},
    {"Кинохит", "kinohit", CAT_MOVIES},
    {"Мосфильм. Золотая коллекция", "mosfilm", CAT_MOVIES},
    {"Paramount Channel", "paramount", CAT_MOVIES},
    {"Русский сериал", "russerial", CAT_SERIES},
    {"Sony Channel", "sony", CAT_SERIES},
    {"Fox", "fox", CAT_SERIES},
    {"Комедия", "komedia", CAT_SERIES},
    {"Мультимания", "multimania", CAT_KIDS},
    {"Nickelodeon", "nick", CAT_KIDS},
    {"Disney", "disney", CAT_KIDS},
    {"Cartoon Network", "cartoon", CAT_KIDS},
    {"Детский мир", "detskiymir", CAT_KIDS},
    {"MTV Live", "mtvlive", CAT_MUSIC},
    {"Europa Plus TV", "europaplus", CAT_MUSIC},
    {"RU.TV", "rutv", CAT_MUSIC},
    {"Bridge TV", "bridge", CAT_MUSIC},
    {"Ля-минор", "laminor", CAT_MUSIC},
    {"Discovery Channel", "discovery", CAT_DOCUMENTARY},
    {"National Geographic", "natgeo", CAT_DOCUMENTARY},
    {"Animal Planet", "animalplanet", CAT_DOCUMENTARY},
    {"History", "history", CAT_DOCUMENTARY},
    {"Viasat History", "viasathistory", CAT_DOCUMENTARY},
    {"Моя планета", "myplanet", CAT_DOCUMENTARY},
    {"Наука", "nauka", CAT_EDUCATION},
    {"Живая планета", "zhivaya", CAT_EDUCATION},
    {"Ю", "utv", CAT_ENTERTAINMENT},
    {"Суббота!", "subbota", CAT_ENTERTAINMENT},
    {"Санкт-Петербург", "spbtv", CAT_REGIONAL},
    {"Москва 24", "moscow24", CAT_REGIONAL},
    {"Москва Доверие", "doverie", CAT_REGIONAL},
    {"Татарстан 24", "tatarstan24", CAT_REGIONAL},
    {"Кубань 24", "kuban24", CAT_REGIONAL},
    {"Кухня ТВ", "kuhnya", CAT_LIFESTYLE},
    {"Охота и рыбалка", "ohota", CAT_LIFESTYLE},
    {"Усадьба", "usadba", CAT_LIFESTYLE},
    {"Fashion TV", "ftv", CAT_LIFESTYLE},
};

static const struct {
    const char *key;
    const char *name;
    const char *code;
} datacenters[] = {
    {"dc1", "Moscow DC1", "msk1"},
    {"dc2", "Moscow DC2", "msk2"},
    {"dc3", "Saint Petersburg", "spb1"},
};

enum { TARIFF_BASIC_COUNT = 3, TARIFF_COUNT = 6 };

/* Basic tariffs carry a share of every category; additional ones whole categories. */
static const struct {
    const char *name;
    unsigned priority; /* basic_tariff_priority: > 0 is basic */
    unsigned price_cents;
    unsigned sessions, basic_sessions;
    unsigned share; /* percent of the channels of a basic tariff */
    int categories[3];
} tariffs[TARIFF_COUNT] = {
    {"Basic", 5, 29900, 2, 1, 75, {-1, -1, -1}},
    {"Basic Plus", 8, 49900, 3, 2, 95, {-1, -1, -1}},
    {"Social", 1, 9900, 1, 1, 55, {-1, -1, -1}},
    {"Sports", 0, 19900, 2, 0, 0, {CAT_SPORTS, -1, -1}},
    {"Cinema", 0, 24900, 2, 0, 0, {CAT_MOVIES, CAT_SERIES, -1}},
    {"Kids", 0, 9900, 2, 0, 0, {CAT_KIDS, CAT_EDUCATION, -1}},
};

struct name {
    const char *text;
    const char *latin; /* for e-mail addresses */
};

static const struct name ru_male[] = {
    {"Александр", "aleksandr"}, {"Дмитрий", "dmitry"},  {"Максим", "maksim"}, {"Сергей", "sergey"},
    {"Андрей", "andrey"},       {"Алексей", "aleksey"}, {"Артём", "artem"},   {"Илья", "ilya"},
    {"Кирилл", "kirill"},       {"Михаил", "mikhail"},  {"Никита", "nikita"}, {"Роман", "roman"},
    {"Егор", "egor"},           {"Иван", "ivan"},       {"Денис", "denis"},   {"Евгений", "evgeny"},
    {"Владимир", "vladimir"},   {"Павел", "pavel"},     {"Олег", "oleg"},     {"Игорь", "igor"},
    {"Николай", "nikolay"},     {"Виктор", "viktor"},
};

static const struct name ru_female[] = {
    {"Анна", "anna"},     {"Мария", "maria"},         {"Елена", "elena"},
    {"Ольга", "olga"},    {"Наталья", "natalya"},     {"Татьяна", "tatyana"},
    {"Ирина", "irina"},   {"Екатерина", "ekaterina"}, {"Светлана", "svetlana"},
    {"Юлия", "yulia"},    {"Анастасия", "anastasia"}, {"Дарья", "darya"},
    {"Полина", "polina"}, {"Виктория", "viktoria"},   {"Ксения", "ksenia"},
    {"Алина", "alina"},   {"Марина", "marina"},       {"Людмила", "lyudmila"},
    {"Галина", "galina"}, {"Софья", "sofya"},
};

/* Male forms; the female form adds "а" (Иванов, Иванова). */
static const struct name ru_last[] = {
    {"Иванов", "ivanov"},     {"Смирнов", "smirnov"},    {"Кузнецов", "kuznetsov"},
    {"Попов", "popov"},       {"Васильев", "vasiliev"},  {"Петров", "petrov"},
    {"Соколов", "sokolov"},   {"Михайлов", "mikhailov"}, {"Новиков", "novikov"},
    {"Фёдоров", "fedorov"},   {"Морозов", "morozov"},    {"Волков", "volkov"},
    {"Алексеев", "alekseev"}, {"Лебедев", "lebedev"},    {"Семёнов", "semenov"},
    {"Егоров", "egorov"},     {"Павлов", "pavlov"},      {"Козлов", "kozlov"},
    {"Степанов", "stepanov"}, {"Николаев", "nikolaev"},  {"Орлов", "orlov"},
    {"Андреев", "andreev"},   {"Макаров", "makarov"},    {"Никитин", "nikitin"},
    {"Захаров", "zakharov"},  {"Зайцев", "zaitsev"},     {"Соловьёв", "solovyov"},
    {"Борисов", "borisov"},   {"Яковлев", "yakovlev"},   {"Григорьев", "grigoriev"},
    {"Романов", "romanov"},   {"Воробьёв", "vorobyov"},  {"Белов", "belov"},
    {"Тихонов", "tikhonov"},  {"Комаров", "komarov"},
};

static const char *const en_first[] = {
    "James",   "Mary",      "John",    "Patricia", "Robert",  "Jennifer", "Michael", "Linda",
    "William", "Elizabeth", "David",   "Barbara",  "Richard", "Susan",    "Joseph",  "Jessica",
    "Thomas",  "Sarah",     "Charles", "Karen",    "Daniel",  "Emily",    "Matthew", "Olivia",
    "Oliver",  "Sophie",    "George",  "Emma",     "Harry",   "Chloe",
};

static const char *const en_last[] = {
    "Smith",    "Johnson", "Williams", "Brown", "Jones",   "Miller", "Davis", "Wilson",
    "Anderson", "Taylor",  "Thomas",   "Moore", "Jackson", "Martin", "Lee",   "Thompson",
    "White",    "Harris",  "Clark",    "Lewis", "Walker",  "Hall",   "Young", "King",
    "Wright",   "Scott",   "Green",    "Baker", "Adams",   "Hill",
};

static const char *const mail_domains[] = {"example.com", "example.org", "example.net"};

/* Device types of the Billing API with the share of devices, in percent. */
static const struct {
    const char *system_name;
    unsigned share;
} device_types[] = {
    {"mag", 20}, {"tvip", 10},     {"android_stb", 15}, {"android", 20},
    {"ios", 10}, {"tizen_tv", 10}, {"lg_webos", 10},    {"kodi", 5},
};

static const unsigned archive_days[] = {1, 3, 7, 7, 14, 14, 30};

/* ---- sample-data ---------------------------------------------------------------------------- */

struct sample_channel {
    char key[24]; /* "ch-" and a number */
    int category;
};

struct sample {
    FILE *out;
    struct rng r;     /* everything but the shape */
    struct rng shape; /* accounts per customer and devices per account only */
    uint64_t accounts, channels;
    struct sample_channel *chan;
    uint64_t devices_made, mag_made;
};

/* Writes s as a JSON string. */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

/*
 * The shape of the next customer: its accounts (1 or 2, at most left) and the devices of each
 * (0-2). It comes from its own generator so that the counts can be known before writing.
 */
static unsigned next_shape(struct rng *shape, uint64_t left, unsigned devices[2])
{
    unsigned n = rng_percent(shape, 40) && left >= 2 ? 2 : 1;

    for (unsigned i = 0; i < n; i++) {
        devices[i] = rng_below(shape, 3);
    }
    return n;
}

static void sample_counts(const struct sample *s)
{
    struct rng shape = {s->shape.s};
    uint64_t left = s->accounts, customers = 0, devices = 0;
    unsigned dev[2];

    while (left > 0) {
        unsigned n = next_shape(&shape, left, dev);
        customers++;
        left -= n;
        for (unsigned i = 0; i < n; i++) {
            devices += dev[i];
        }
    }
    fprintf(s->out,
            "{\"counts\": {\"customers\": %" PRIu64 ", \"accounts\": %" PRIu64
            ", \"devices\": %" PRIu64 "},\n",
            customers, s->accounts, devices);
}

static void sample_catalogue(struct sample *s)
{
    FILE *f = s->out;

    fputs("\"datacenters\": [\n", f);
    for (size_t i = 0; i < NELEMS(datacenters); i++) {
        fprintf(f, "{\"key\": \"%s\", \"name\": \"%s\", \"code\": \"%s\"}%s\n", datacenters[i].key,
                datacenters[i].name, datacenters[i].code, i + 1 < NELEMS(datacenters) ? "," : "");
    }
    fputs("],\n\"categories\": [\n", f);
    for (size_t i = 0; i < CAT_COUNT; i++) {
        fprintf(f, "{\"key\": \"%s\", \"name\": \"%s\", \"order\": %zu}%s\n", categories[i].key,
                categories[i].name, (i + 1) * 10, i + 1 < CAT_COUNT ? "," : "");
    }
    fputs("],\n\"channels\": [\n", f);
    for (uint64_t n = 1; n <= s->channels; n++) {
        struct sample_channel *ch = &s->chan[n - 1];
        char name[128], slug[64];
        unsigned archive = 0;

        if (n <= NELEMS(base_channels)) {
            ch->category = base_channels[n - 1].category;
            snprintf(name, sizeof(name), "%s", base_channels[n - 1].name);
            snprintf(slug, sizeof(slug), "%s", base_channels[n - 1].slug);
        } else {
            ch->category = (int)rng_below(&s->r, CAT_COUNT);
            snprintf(name, sizeof(name), "%s Channel %" PRIu64, categories[ch->category].name, n);
            snprintf(slug, sizeof(slug), "%s-%" PRIu64, categories[ch->category].slug, n);
        }
        if (rng_percent(&s->r, 45)) {
            archive = archive_days[rng_below(&s->r, NELEMS(archive_days))];
        }
        snprintf(ch->key, sizeof(ch->key), "ch-%" PRIu64, n);
        fprintf(f, "{\"key\": \"%s\", \"name\": ", ch->key);
        put_str(f, name);
        fprintf(f,
                ", \"number\": %" PRIu64 ", \"category\": \"%s\", "
                "\"icon\": \"https://example.com/icons/%" PRIu64 ".png\", "
                "\"epg_channel_id\": \"%s.tv\", \"stream_name\": \"%s\", \"archive_days\": %u}%s\n",
                n, categories[ch->category].key, n, slug, slug, archive,
                n < s->channels ? "," : "");
    }
    fputs("],\n\"streaming_services\": [\n", f);
    for (size_t i = 0; i < NELEMS(datacenters); i++) {
        const char *dc = datacenters[i].key;
        fprintf(f,
                "{\"key\": \"fl-%s\", \"name\": \"Flussonic %s\", \"type\": \"flussonic\", "
                "\"datacenter\": \"%s\", \"url_masks\": {"
                "\"live\": \"http://fl-%s.example.net/$stream_name/index.m3u8?token=$token\", "
                "\"archive\": \"http://fl-%s.example.net/$stream_name/"
                "archive-$flpbt-$flpdur.m3u8?token=$token\"}, \"weight\": 100},\n",
                dc, datacenters[i].name, dc, dc, dc);
        fprintf(f,
                "{\"key\": \"astra-%s\", \"name\": \"Astra %s\", \"type\": \"astra\", "
                "\"datacenter\": \"%s\", \"url_masks\": {"
                "\"live\": \"http://astra-%s.example.net/$stream_name?token=$token\"}, "
                "\"weight\": 50}%s\n",
                dc, datacenters[i].name, dc, dc, i + 1 < NELEMS(datacenters) ? "," : "");
    }
    fputs("],\n", f);
}

static bool tariff_has_category(size_t t, int category)
{
    for (size_t i = 0; i < NELEMS(tariffs[t].categories); i++) {
        if (tariffs[t].categories[i] == category) {
            return true;
        }
    }
    return false;
}

static void sample_tariffs(struct sample *s)
{
    FILE *f = s->out;

    fputs("\"tariffs\": [\n", f);
    for (size_t t = 0; t < TARIFF_COUNT; t++) {
        bool first = true;

        fprintf(f,
                "{\"ext_id\": \"T-%zu\", \"name\": \"%s\", \"period\": 1, \"price\": %u.%02u, "
                "\"sessions_count\": %u, \"basic_sessions_count\": %u, "
                "\"basic_tariff_priority\": %u, \"channels\": [",
                t + 1, tariffs[t].name, tariffs[t].price_cents / 100, tariffs[t].price_cents % 100,
                tariffs[t].sessions, tariffs[t].basic_sessions, tariffs[t].priority);
        for (uint64_t n = 0; n < s->channels; n++) {
            bool in = tariffs[t].priority > 0 ? s->chan[n].category == CAT_FEDERAL ||
                                                    rng_percent(&s->r, tariffs[t].share)
                                              : tariff_has_category(t, s->chan[n].category);
            if (in) {
                fprintf(f, "%s\"%s\"", first ? "" : ", ", s->chan[n].key);
                first = false;
            }
        }
        fputs("], \"streaming_services\": [", f);
        for (size_t i = 0; i < NELEMS(datacenters); i++) {
            fprintf(f, "%s\"fl-%s\", \"astra-%s\"", i == 0 ? "" : ", ", datacenters[i].key,
                    datacenters[i].key);
        }
        fprintf(f, "]}%s\n", t + 1 < TARIFF_COUNT ? "," : "");
    }
    fputs("],\n", f);
}

/* A bijection of the low bits-bit integers: consecutive counters give scattered values. */
static uint64_t scatter(uint64_t x, unsigned bits)
{
    uint64_t mask = (1ull << bits) - 1;

    x = (x + 0x5bd1e995ull) & mask;         /* counter 0 must not give 00:00:00 */
    x = (x * 0x9e3779b97f4a7c15ull) & mask; /* odd multiplier: a bijection mod 2^bits */
    x ^= x >> (bits / 2);
    x = (x * 0xd6e8feb86659fd93ull) & mask;
    return x ^ (x >> (bits / 2));
}

/* A MAC-like device uid, unique in the bundle: MAG boxes in Infomir's OUI 00:1A:79, the rest
 * as locally administered addresses (02:...). */
static void device_uid(struct sample *s, bool mag, char out[18])
{
    uint64_t v;

    if (mag && s->mag_made < (1u << 24)) {
        v = scatter(s->mag_made++, 24);
        snprintf(out, 18, "00:1A:79:%02X:%02X:%02X", (unsigned)(v >> 16) & 0xff,
                 (unsigned)(v >> 8) & 0xff, (unsigned)v & 0xff);
    } else {
        v = scatter(s->devices_made, 40);
        snprintf(out, 18, "02:%02X:%02X:%02X:%02X:%02X", (unsigned)(v >> 32) & 0xff,
                 (unsigned)(v >> 24) & 0xff, (unsigned)(v >> 16) & 0xff, (unsigned)(v >> 8) & 0xff,
                 (unsigned)v & 0xff);
    }
    s->devices_made++;
}

static const char *pick_device_type(struct rng *r)
{
    unsigned x = rng_below(r, 100);

    for (size_t i = 0; i < NELEMS(device_types); i++) {
        if (x < device_types[i].share) {
            return device_types[i].system_name;
        }
        x -= device_types[i].share;
    }
    return device_types[0].system_name;
}

static void sample_person(struct sample *s, uint64_t n)
{
    FILE *f = s->out;
    char first[64], last[64], mail_first[64], mail_last[64], phone[24];
    struct rng *r = &s->r;

    if (rng_percent(r, 70)) {
        bool female = rng_percent(r, 50);
        const struct name *fn = female ? &ru_female[rng_below(r, NELEMS(ru_female))]
                                       : &ru_male[rng_below(r, NELEMS(ru_male))];
        const struct name *ln = &ru_last[rng_below(r, NELEMS(ru_last))];
        snprintf(first, sizeof(first), "%s", fn->text);
        snprintf(last, sizeof(last), "%s%s", ln->text, female ? "а" : "");
        snprintf(mail_first, sizeof(mail_first), "%s", fn->latin);
        snprintf(mail_last, sizeof(mail_last), "%s%s", ln->latin, female ? "a" : "");
        snprintf(phone, sizeof(phone), "+79%09u", rng_below(r, 1000000000u));
    } else {
        snprintf(first, sizeof(first), "%s", en_first[rng_below(r, NELEMS(en_first))]);
        snprintf(last, sizeof(last), "%s", en_last[rng_below(r, NELEMS(en_last))]);
        snprintf(mail_first, sizeof(mail_first), "%s", first);
        snprintf(mail_last, sizeof(mail_last), "%s", last);
        for (char *p = mail_first; *p != '\0'; p++) {
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        }
        for (char *p = mail_last; *p != '\0'; p++) {
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        }
        snprintf(phone, sizeof(phone), "+447700900%03u", rng_below(r, 1000)); /* Ofcom drama */
    }
    fprintf(f, "{\"ext_id\": \"C-%" PRIu64 "\", \"firstname\": \"%s\", \"lastname\": \"%s\", ", n,
            first, last);
    fprintf(f,
            "\"mobile_phone_number\": \"%s\", \"email\": \"%s.%s%" PRIu64 "@%s\", "
            "\"balance\": %u.%02u, ",
            phone, mail_first, mail_last, n, mail_domains[rng_below(r, NELEMS(mail_domains))],
            100 + rng_below(r, 4900), rng_below(r, 100));
}

static void sample_customer_tariffs(struct sample *s)
{
    unsigned basic = rng_below(&s->r, 100), extra = rng_below(&s->r, 3);
    unsigned first = basic < 55 ? 1 : basic < 85 ? 2 : 3;
    unsigned add = TARIFF_BASIC_COUNT + 1 + rng_below(&s->r, TARIFF_COUNT - TARIFF_BASIC_COUNT);

    fprintf(s->out, "\"tariffs\": [\"T-%u\"", first);
    for (unsigned i = 0; i < extra; i++) {
        fprintf(s->out, ", \"T-%u\"", add);
        add = add == TARIFF_COUNT ? TARIFF_BASIC_COUNT + 1 : add + 1; /* distinct */
    }
    fputs("], ", s->out);
}

static void sample_customers(struct sample *s)
{
    FILE *f = s->out;
    uint64_t left = s->accounts, abonement = SAMPLE_FIRST_ABONEMENT, n = 0;
    unsigned dev[2];

    fputs("\"customers\": [\n", f);
    while (left > 0) {
        unsigned na = next_shape(&s->shape, left, dev);

        left -= na;
        sample_person(s, ++n);
        sample_customer_tariffs(s);
        fputs("\"accounts\": [", f);
        for (unsigned a = 0; a < na; a++) {
            fprintf(f,
                    "%s{\"abonement\": \"%" PRIu64 "\", \"password\": \"%06u\", "
                    "\"allow_login_by_abonement\": %d, \"allow_login_by_device_uid\": %d, "
                    "\"devices\": [",
                    a == 0 ? "" : ", ", abonement++, rng_below(&s->r, 1000000),
                    rng_percent(&s->r, 25) ? 1 : 0, rng_percent(&s->r, 70) ? 1 : 0);
            for (unsigned d = 0; d < dev[a]; d++) {
                const char *type = pick_device_type(&s->r);
                char uid[18];
                device_uid(s, strcmp(type, "mag") == 0, uid);
                fprintf(f, "%s{\"system_name\": \"%s\", \"device_uid\": \"%s\"}",
                        d == 0 ? "" : ", ", type, uid);
            }
            fputs("]}", f);
        }
        fprintf(f, "]}%s\n", left > 0 ? "," : "");
    }
    fputs("]}\n", f);
}

int ctl_cmd_sample_data(struct ctl_ctx *c, char **args)
{
    struct sample s = {
        .out = stdout,
        .r = {c->seed},
        .shape = {c->seed ^ 0x5ca1ab1e5eed5eedull},
        .accounts = c->accounts != 0 ? c->accounts : SAMPLE_DEFAULT_ACCOUNTS,
        .channels = c->channels != 0 ? c->channels : SAMPLE_DEFAULT_CHANNELS,
    };
    int rv = 0;

    (void)args;
    s.chan = calloc(s.channels, sizeof(*s.chan));
    if (s.chan == NULL) {
        fprintf(stderr, "tvmwctl: out of memory\n");
        return 1;
    }
    if (c->out_file != NULL && (s.out = fopen(c->out_file, "we")) == NULL) {
        fprintf(stderr, "tvmwctl: cannot create %s: %s\n", c->out_file, strerror(errno));
        free(s.chan);
        return 1;
    }
    setvbuf(s.out, NULL, _IOFBF, SAMPLE_OUT_BUFFER);
    sample_counts(&s);
    sample_catalogue(&s);
    sample_tariffs(&s);
    sample_customers(&s);
    if (fflush(s.out) != 0 || ferror(s.out)) {
        fprintf(stderr, "tvmwctl: cannot write %s: %s\n",
                c->out_file != NULL ? c->out_file : "stdout", strerror(errno));
        rv = 1;
    }
    if (s.out != stdout && fclose(s.out) != 0 && rv == 0) {
        fprintf(stderr, "tvmwctl: cannot write %s: %s\n", c->out_file, strerror(errno));
        rv = 1;
    }
    free(s.chan);
    return rv;
}
