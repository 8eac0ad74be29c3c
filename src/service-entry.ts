/**
 * `import … from 'taskqueue-p2p/service'`: embedding a service (its SQLite store, through
 * `node:sqlite`) and local workers that share its queue file. Kept apart from the client
 * entry point (index.ts) so that importing the client never loads the store.
 */
export {
  startServiceNode, ListenError,
  type ServiceNode, type ServiceNodeInit
} from './service/service-node.js'
export { PathError, StateLockedError } from './node/startup-errors.js'
export { LocalBackend, type LocalBackendOptions, type OpenLocalBackendOptions } from './worker/local-backend.js'
export * from './index.js'
