export {
  ACCELERATE_PREFIX, ConfigError, DATASETS_PREFIX, EnvReader, FALSE_WORDS, REDACTED, Reject, TRUE_WORDS,
  aliasOf, checkMultiaddr, isFalseWord, isTrueWord, parseBool, parseInteger, parseNumber, splitList
} from './env.js'
export type { Env, Override, ReaderOptions, Source, WarnSink } from './env.js'
export {
  DEFAULT_STEP_TIMEOUTS, DISCOVERY_STEPS, MAX_STEP_TIMEOUT_S, isStep, parseProtocol, parseStepTimeouts, warnPlanned
} from './special.js'
export type { DiscoveryStep, ParseResult, Protocol, StepTimeouts } from './special.js'
export {
  AUTH_MODES, M, P, TASK_QUEUE_PATH_VAR, TASK_QUEUE_URL_VAR, TASK_QUEUE_POOL_SIZE_VAR, DEFAULT_QUEUE_POOL_SIZE, TOKEN_VAR, cacheHome, defaultIdentityFile, loadSettings,
  parseQueueUrl, redactQueueUrl, redactSettings, resolveSettings
} from './settings.js'
export type { AuthMode, LoadOptions, Role, Settings, SettingsOverrides } from './settings.js'
export {
  LOG_FORMATS, LOG_FORMAT_VAR, LOG_LEVELS, LOG_LEVEL_VAR, OLD_LOG_LEVEL_VAR, loadLogSettings, readLogSettings
} from './logging.js'
export type { LogFormat, LogLevel, LogSettings } from './logging.js'
