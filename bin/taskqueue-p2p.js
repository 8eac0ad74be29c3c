#!/usr/bin/env node
import { createRequire } from 'node:module'
createRequire(import.meta.url)('./launch.cjs')('dist/src/cli/taskqueue-p2p.js')
