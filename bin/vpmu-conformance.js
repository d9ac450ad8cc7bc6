#!/usr/bin/env -S node --no-parallel-scavenge --no-concurrent-marking
// The GC flags of package.json's scripts: the pool keeps every core busy, so GC helper threads only compete with it.
// The built command line of the project this workspace sits in (npm ci's prepare builds dist/).
import '../dist/cli.js';
