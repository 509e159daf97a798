// Talks to an Xtream Codes compatible API with the @iptv/xtream-api client
// (raw and with its "standardized" serializer, which base64-decodes EPG
// texts) and prints what it read as one JSON object for it_exports.
// Usage: node check_xtream.mjs <base url> <username> <password>
import { Xtream } from '@iptv/xtream-api';
import { standardizedSerializer } from '@iptv/xtream-api/standardized';

const [url, username, password] = process.argv.slice(2);
const raw = new Xtream({ url, username, password, preferredFormat: 'm3u8' });
const std = new Xtream({ url, username, password, serializer: standardizedSerializer });

const out = {};
try {
  out.profile = await raw.getProfile();
  out.server = await raw.getServerInfo();
  if (out.profile.auth === 1) {
    out.categories = await std.getChannelCategories();
    out.channels = await raw.getChannels();
    out.std_channels = await std.getChannels();
    out.short_epg = {};
    out.full_epg = {};
    for (const ch of out.std_channels) {
      out.short_epg[ch.id] = await std.getShortEPG({ channelId: ch.id, limit: 2 });
      out.full_epg[ch.id] = await std.getFullEPG({ channelId: ch.id });
    }
    out.timeshift_url = raw.generateStreamUrl({
      type: 'channel',
      streamId: out.channels[0].stream_id,
      extension: 'm3u8',
      timeshift: { start: new Date(Date.now() - 3600 * 1000), duration: 30 },
    });
  }
} catch (e) {
  out.error = String(e);
}
process.stdout.write(JSON.stringify(out) + '\n');
