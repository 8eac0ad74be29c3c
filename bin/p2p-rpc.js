#!/usr/bin/env node
import { createRequire } from 'node:module'
createRequire(import.meta.url)('./launch.cjs')('dist/src/cli/p2p-rpc.js', 'dist/bundle/p2p-rpc.js')
