#!/usr/bin/env -S node --no-parallel-scavenge
// package.json's GC flag: the pool keeps every core busy, so scavenges in parallel only take cores from the workers.
// The built command line of the project this workspace sits in (npm ci's prepare builds dist/).
import '../dist/cli.js';
