// Parses an M3U playlist file with two players' parsers (iptv-playlist-parser,
// @iptv/playlist) and prints what each read, as one JSON object, for
// it_exports to compare with the edge's other exports.
// Usage: node check_m3u.mjs <file>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseM3U } from '@iptv/playlist';

const require = createRequire(import.meta.url);
const parser = require('iptv-playlist-parser');
const text = readFileSync(process.argv[2], 'utf8');

const a = parser.parse(text);
const b = parseM3U(text);
const out = {
  'iptv-playlist-parser': {
    header: a.header.attrs,
    items: a.items.map((i) => ({
      tvg_id: i.tvg.id,
      tvg_name: i.tvg.name,
      tvg_logo: i.tvg.logo,
      group: i.group.title,
      catchup: i.catchup.type,
      catchup_days: i.catchup.days,
      catchup_source: i.catchup.source,
      timeshift: i.timeshift,
      name: i.name,
      url: i.url,
    })),
  },
  '@iptv/playlist': {
    header: { 'x-tvg-url': b.headers?.xTvgUrl, 'url-tvg': b.headers?.urlTvg },
    items: b.channels.map((i) => ({
      tvg_id: i.tvgId,
      tvg_name: i.tvgName,
      tvg_logo: i.tvgLogo,
      tvg_chno: i.tvgChno ?? i.extras?.['tvg-chno'],
      group: i.groupTitle,
      catchup: i.catchup,
      catchup_days: i.catchupDays,
      catchup_source: i.catchupSource,
      timeshift: i.timeshift,
      name: i.name,
      url: i.url,
    })),
  },
};
process.stdout.write(JSON.stringify(out) + '\n');
