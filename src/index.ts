/**
 * The library entry point (`import … from 'taskqueue-p2p'`): the client, an embeddable
 * service, workers with their handler API, tools, settings and the types they speak.
 * Internals (framing, the store's SQL, discovery parts) are not exported: package.json
 * `exports` names this file only, so they can change without breaking a user.
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

export {
  startServiceNode, ListenError,
  type ServiceNode, type ServiceNodeInit
} from './service/service-node.js'
export {
  ToolRegistry, ToolError, InvalidToolParamsError,
  type ToolDefinition, type ToolHandler, type ToolCallInfo, type ToolContext
} from './tools/registry.js'

export {
  Worker, WorkerShutdownError, LeaseLostError, FinalError, RemoteBackend, LocalBackend, BackendError, builtinHandlers, mergeHandlers,
  loadHandlerModule,
  type WorkerOptions, type WorkerStats, type WorkerRunResult, type QueueBackend, type TaskHandler, type TaskContext,
  type HandlerMap, type RemoteBackendOptions, type LocalBackendOptions
} from './worker/index.js'

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
