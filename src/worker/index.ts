/** Public surface of the worker: backends, the handler API and the Worker itself. */
export {
  type QueueBackend, type BackendClaimOptions, type BackendCompleteOptions, type BackendReleaseOptions,
  type BackendHeartbeatOptions,
  BackendError, LEASE_LOST_CODES, isLeaseLost, toBackendError, completeWithRetry, backoffMs, sleep
} from './backend.js'
export { type RemoteQueueLike, type RemoteBackendOptions, RemoteBackend } from './remote-backend.js'
export { type LocalBackendOptions, type OpenLocalBackendOptions, LocalBackend } from './local-backend.js'
export {
  type TaskHandler, type TaskContext, type HandlerMap, type BuiltinHandlerOptions, type LoadHandlerOptions,
  MAX_SLEEP_S, FinalError, isFinalError, builtinHandlers, toolCallHandler, echoHandler, sleepHandler, mergeHandlers, dispatchTable,
  claimTaskTypes, loadHandlerModule, handlersFromModule
} from './handlers.js'
export {
  type WorkerOptions, type WorkerStats, type WorkerRunResult,
  Worker, WorkerShutdownError, LeaseLostError
} from './worker.js'
