#!/usr/bin/env node
// The built command line of the project this workspace sits in (npm ci's prepare builds dist/).
import '../dist/cli.js';
