#!/usr/bin/env python3
"""Writes XMLTV test documents: realistic guides of any size, and hostile ones.

    xmltv_gen.py --channels 1000 --days 14 --out epg.xml.gz
    xmltv_gen.py --channels 3 --days 2 --start 2026-01-01 --tz +0300 --out small.xml
    xmltv_gen.py --hostile billion-laughs --out bad.xml

A guide has <channel> entries then <programme> entries, channel after
channel, each channel's programmes back to back from --start (default:
today 00:00 UTC plus --start-offset-days) for --days days, durations of
5-minute steps between --min-minutes and --max-minutes. Channel ids are
--id-format with {n} the channel number (default "ch{n}.tvmw"). The same
arguments and --seed give the same bytes, so tests can compute what a
document holds. --variant V changes every title (re-import tests); --drop
N leaves out every Nth programme; --tz writes times in that zone (the
instants stay the same). Output is gzip when --out ends in .gz. Streamed:
memory stays small for any size. Python standard library only.

Hostile kinds: billion-laughs, external-entity, deep-nesting, huge-attribute,
huge-text, truncated, bad-utf8, wrong-encoding-declared, not-xml, empty,
wrong-root, truncated-gzip, bomb (48 MiB of blanks; with --out x.gz a small
file that inflates past a small epg.max_xml_bytes), bad-programmes (a valid
guide whose programmes are each broken in a different way; it imports with
them skipped). With --out ending in .gz a hostile document is compressed too.
"""
import argparse
import datetime as dt
import gzip
import random
import sys
from xml.sax.saxutils import escape, quoteattr

WORDS_RU = ("новости утро вечер футбол кино сериал погода мир спорт музыка история "
            "природа наука детям шоу концерт документальный фильм жизнь город").split()
WORDS_EN = ("news morning evening football movie series weather world sport music history "
            "nature science kids show concert documentary film life city").split()
CATEGORIES = ("News", "Sport", "Movie", "Series", "Kids", "Music", "Documentary", "Show")
RATINGS = ("0+", "6+", "12+", "16+", "18+")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--days", type=float, default=1)
    p.add_argument("--start", help="YYYY-MM-DD (UTC midnight)")
    p.add_argument("--start-offset-days", type=int, default=0)
    p.add_argument("--first-channel", type=int, default=1)
    p.add_argument("--id-format", default="ch{n}.tvmw")
    p.add_argument("--min-minutes", type=int, default=15)
    p.add_argument("--max-minutes", type=int, default=120)
    p.add_argument("--tz", default="+0000", help="offset written in times, e.g. +0300")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--variant", type=int, default=0)
    p.add_argument("--drop", type=int, default=0)
    p.add_argument("--no-stop", action="store_true", help="omit stop attributes")
    p.add_argument("--hostile")
    p.add_argument("--out", default="-")
    return p.parse_args(argv)


class Out:
    """A file (gzip when the name ends in .gz) or stdout; mtime 0 keeps gzip
    output the same from run to run."""

    def __init__(self, path):
        self.raw = sys.stdout.buffer if path == "-" else open(path, "wb")
        self.gz = None
        if path.endswith(".gz"):
            self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0,
                                    compresslevel=6)
        self.w = self.gz or self.raw

    def write(self, b):
        self.w.write(b)

    def flush(self):
        self.w.flush()

    def close(self):
        if self.gz:
            self.gz.close()
        if self.raw is sys.stdout.buffer:
            self.raw.flush()
        else:
            self.raw.close()


def tz_offset(tz):
    sign = -1 if tz[0] == "-" else 1
    return sign * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)


def fmt_time(unix_s, tz):
    t = dt.datetime.fromtimestamp(unix_s + tz_offset(tz), dt.timezone.utc)
    return t.strftime("%Y%m%d%H%M%S") + " " + tz


def sentence(rng, words, n):
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def guide(a, out):
    if a.start:
        start = int(dt.datetime.strptime(a.start, "%Y-%m-%d")
                    .replace(tzinfo=dt.timezone.utc).timestamp())
    else:
        today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        start = int(today.timestamp())
    start += a.start_offset_days * 86400
    end = start + int(a.days * 86400)
    w = out
    w.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n')
    w.write(b'<tv generator-info-name="tvmw xmltv_gen.py" source-info-name="test">\n')
    chans = range(a.first_channel, a.first_channel + a.channels)
    for n in chans:
        cid = a.id_format.format(n=n)
        w.write(('  <channel id=%s>\n    <display-name lang="ru">Канал %d</display-name>\n'
                 '    <display-name>%d</display-name>\n'
                 '    <icon src="https://img.example.net/ch/%d.png"/>\n  </channel>\n'
                 % (quoteattr(cid), n, n, n)).encode())
    total = 0
    for n in chans:
        rng = random.Random(a.seed * 1000003 + n)
        cid = quoteattr(a.id_format.format(n=n))
        t = start
        k = 0
        while t < end:
            dur = 60 * 5 * rng.randint(a.min_minutes // 5, a.max_minutes // 5)
            k += 1
            words = WORDS_RU if n % 2 else WORDS_EN
            title = sentence(rng, words, rng.randint(1, 4))[:-1]
            if a.variant:
                title = "%s (v%d)" % (title, a.variant)
            desc = sentence(rng, words, rng.randint(5, 30))
            cat = rng.choice(CATEGORIES)
            rating = rng.choice(RATINGS)
            if a.drop and k % a.drop == 0:
                t += dur
                continue
            stop = "" if a.no_stop else " stop=%s" % quoteattr(fmt_time(t + dur, a.tz))
            w.write(('  <programme start=%s%s channel=%s>\n'
                     '    <title lang="%s">%s</title>\n'
                     '    <sub-title>%s %d</sub-title>\n'
                     '    <desc>%s</desc>\n'
                     '    <category>%s</category>\n'
                     '    <icon src="https://img.example.net/p/%d-%d.jpg"/>\n'
                     '    <episode-num system="xmltv_ns">0.%d.</episode-num>\n'
                     '    <rating system="RU"><value>%s</value></rating>\n'
                     '  </programme>\n'
                     % (quoteattr(fmt_time(t, a.tz)), stop, cid, "ru" if n % 2 else "en",
                        escape(title), "Выпуск" if n % 2 else "Part", k, escape(desc), cat, n, k,
                        k - 1, rating)).encode())
            total += 1
            t += dur
    w.write(b"</tv>\n")
    w.flush()
    return total


def hostile(kind, out):
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    ok = (b'<programme start="20260101120000 +0000" stop="20260101130000 +0000" '
          b'channel="ch1.tvmw"><title>Fine</title></programme>\n')
    if kind == "billion-laughs":
        ents = [b'<!ENTITY lol0 "lol">']
        for i in range(1, 10):
            ents.append(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1)) * 10))
        out.write(head + b"<!DOCTYPE tv [\n" + b"\n".join(ents) + b"\n]>\n<tv>\n"
                  b'<programme start="20260101120000" channel="ch1.tvmw">'
                  b"<title>&lol9;</title></programme>\n</tv>\n")
    elif kind == "external-entity":
        out.write(head + b'<!DOCTYPE tv [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<tv>\n'
                  b'<programme start="20260101120000" channel="ch1.tvmw">'
                  b"<title>&xxe;</title></programme>\n</tv>\n")
    elif kind == "deep-nesting":
        out.write(head + b"<tv>" + ok + b"<x>" * 5000 + b"</x>" * 5000 + b"</tv>\n")
    elif kind == "huge-attribute":
        out.write(head + b'<tv><programme start="20260101120000" channel="' + b"a" * (12 << 20)
                  + b'"><title>x</title></programme></tv>\n')
    elif kind == "huge-text":
        out.write(head + b'<tv><programme start="20260101120000" channel="ch1.tvmw"><title>'
                  + b"y" * (12 << 20) + b"</title></programme></tv>\n")
    elif kind == "truncated":
        doc = head + b"<tv>\n" + ok * 50 + b"</tv>\n"
        out.write(doc[: len(doc) * 2 // 3])
    elif kind == "bad-utf8":
        out.write(head + b'<tv><programme start="20260101120000" channel="ch1.tvmw">'
                  b"<title>caf\xe9</title></programme></tv>\n")
    elif kind == "wrong-encoding-declared":
        out.write(b'<?xml version="1.0" encoding="x-no-such-charset"?>\n<tv>' + ok + b"</tv>\n")
    elif kind == "not-xml":
        out.write(b'{"programmes": [1, 2, 3]}\n' + bytes(range(256)))
    elif kind == "empty":
        pass
    elif kind == "wrong-root":
        out.write(head + b"<rss><channel/></rss>\n")
    elif kind == "truncated-gzip":
        data = gzip.compress(head + b"<tv>\n" + ok * 2000 + b"</tv>\n", mtime=0)
        out.write(data[: len(data) // 2])
    elif kind == "bomb":
        # Well-formed, 48 MiB of blank comments: as .gz about 50 KiB that inflates past any small
        # epg.max_xml_bytes.
        out.write(head + b"<tv>\n" + ok)
        for _ in range(48):
            out.write(b"<!--" + b" " * ((1 << 20) - 7) + b"-->")
        out.write(b"\n</tv>\n")
    elif kind == "bad-programmes":
        bad = [
            b'<programme start="2026-01-01 12:00" channel="ch1.tvmw"><title>bad time</title>'
            b"</programme>\n",
            b'<programme start="20260101140000" channel="ch1.tvmw"></programme>\n',
            b'<programme start="20260101150000"><title>no channel</title></programme>\n',
            b'<programme start="20260101160000" stop="20260101150000" channel="ch1.tvmw">'
            b"<title>stop before start</title></programme>\n",
            b'<programme start="20260101170000" channel="' + b"c" * 5000
            + b'"><title>long channel attribute</title></programme>\n',
        ]
        out.write(head + b"<tv>\n" + ok + b"".join(bad) + b"</tv>\n")
    else:
        raise SystemExit("unknown hostile kind %r" % kind)


def main(argv):
    a = parse_args(argv)
    if a.hostile:
        out = Out(a.out)  # gzip-compressed when --out ends in .gz
        hostile(a.hostile, out)
        out.close()
        return 0
    out = Out(a.out)
    n = guide(a, out)
    out.close()
    print("xmltv_gen: %d channels, %d programmes" % (a.channels, n), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
