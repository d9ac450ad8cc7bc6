#!/usr/bin/env node
/**
 * The command line: `vpmu-conformance start|replay|bugs|compare|soak|merge` (the package's bin, what `npx
 * vpmu-conformance` runs; `npm start` and `npm run replay|bugs|compare|soak|merge` run the same commands).
 * Each command is loaded only when asked for, so `--help` costs commander alone.
 */

import { createRequire } from 'node:module';
import { EXIT, EXIT_HELP, stdoutClosed, stdoutIsClosed } from './exit.js';

interface Command {
  readonly summary: string;
  readonly run: (argv: readonly string[]) => Promise<number>;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  start: {
    summary: 'the main job: every check of the reference model and the designs (npm start)',
    run: async (a) => (await import('./main.js')).startCli(a),
  },
  replay: {
    summary: 'replay a report.json: print its trace, say whether it still diverges (npm run replay)',
    run: async (a) => (await import('./replay.js')).replayCli(a),
  },
  bugs: {
    summary: 'detection power on the historical KVM bug catalogue (npm run bugs)',
    run: async (a) => (await import('./bugs.js')).bugsCli(a),
  },
  compare: {
    summary: 'the vPMU designs side by side: properties held, cost of guest workloads (npm run compare)',
    run: async (a) => (await import('./compare.js')).compareCli(a),
  },
  soak: {
    summary: 'every check of npm start, round after round on fresh seeds, until a time budget (npm run soak)',
    run: async (a) => (await import('./soak.js')).soakCli(a),
  },
  merge: {
    summary: 'join the --json results of the shards of one run (npm start -- --shard i/n) into one (npm run merge)',
    run: async (a) => (await import('./merge.js')).mergeCli(a),
  },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `Usage: vpmu-conformance <command> [options]

Conformance of virtual PMUs (Linux KVM's vPMU designs) against a reference Intel PMU model.

Commands:
${Object.entries(COMMANDS)
  .map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`)
  .join('\n')}

Run 'vpmu-conformance <command> --help' for a command's options. From a clone after 'npm ci':
'npx vpmu-conformance <command>', or 'npm start -- [options]' and 'npm run <command> -- [options]'.

${EXIT_HELP}
`;
}

// A reader that goes away (`| head`) ends the run quietly, as an interruption: nothing more can be shown.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE' || stdoutIsClosed()) stdoutClosed();
  else throw e;
});

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(help());
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h') {
    process.stdout.write(help());
    return EXIT.passed;
  }
  if (name === '--version' || name === '-V') {
    const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
    console.log(pkg.version);
    return EXIT.passed;
  }
  if (name === 'help')
    return rest[0] !== undefined && Object.hasOwn(COMMANDS, rest[0]) ? main([rest[0], '--help']) : main(['--help']);
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    console.error(
      `vpmu-conformance: unknown command '${name.slice(0, 40)}' (commands: ${Object.keys(COMMANDS).join(', ')}; --help for usage)`,
    );
    return EXIT.usage;
  }
  return command.run(rest);
}

process.exitCode = await main(process.argv.slice(2));
