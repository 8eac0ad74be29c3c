/**
 * The library entry point (`import … from 'taskqueue-p2p'`): the client, remote workers
 * with their handler API, tools, settings and the types they speak. It never loads the
 * store (`node:sqlite`): a client-only process gets no SQLite ExperimentalWarning and runs
 * where `node:sqlite` does not exist. The service side (`startServiceNode`, the local
 * worker backend) is `taskqueue-p2p/service` (service-entry.ts).
 * Internals (framing, the store's SQL, discovery parts) are not exported: package.json
 * `exports` names these two files only, so they can change without breaking a user.
 */
export {
  RemoteQueue,
  type RemoteQueueOptions, type RequestOptions, type DiscoverOptions
} from './client/remote-queue.js'
export type { SubmitRequest, SubmitManyResult } from './client/submit-batch.js'
export {
  ClientError, DiscoveryError, DialError, DeadlineError, ProtocolError, ProtocolNotSupportedError, RemoteError,
  type ClientErrorCode
} from './client/errors.js'
export type { DiscoveryTrace } from './discovery/types.js'
export { DiscoveryAttempts, type DiscoveryAttemptCount, type DiscoveryAction } from './discovery/attempts.js'

export {
  ToolRegistry, ToolError, InvalidToolParamsError,
  type ToolDefinition, type ToolHandler, type ToolCallInfo, type ToolContext
} from './tools/registry.js'

// Module by module, not through worker/index.js: that one also names LocalBackend (the store).
export { Worker, WorkerShutdownError, LeaseLostError, type WorkerOptions, type WorkerStats, type WorkerRunResult } from './worker/worker.js'
export { RemoteBackend, type RemoteBackendOptions } from './worker/remote-backend.js'
export { BackendError, type QueueBackend } from './worker/backend.js'
export { builtinHandlers, mergeHandlers, loadHandlerModule, FinalError, type TaskHandler, type TaskContext, type HandlerMap } from './worker/handlers.js'

export {
  loadSettings, ConfigError,
  type Settings, type SettingsOverrides, type Env
} from './config/index.js'

export {
  TERMINAL_STATUSES,
  type Task, type ClaimedTask, type TaskStatus, type JsonObject, type JsonValue
} from './protocol/types.js'
export { ERROR_CODES, type ErrorCode } from './protocol/errors.js'
export { createLogger, silentLogger, type Logger } from './logger.js'
export { VERSION } from './version.js'
