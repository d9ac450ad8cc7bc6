/**
 * `npm run replay` over the built-in designs and the planted ones of planted.ts: the same CLI code,
 * so a report on a planted fault replays exactly as one on a ported bug does.
 */
import { replayCli } from '../../cli/replay.js';
import { DESIGNS } from '../../designs/registry.js';
import { PLANTED } from './planted.js';

process.exitCode = await replayCli(process.argv.slice(2), [...DESIGNS, ...Object.values(PLANTED)]);
