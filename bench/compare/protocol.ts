/** The IPC messages between compare/run.ts and the producer process (compare/child.ts). */
export type ProducerRequest =
  | { shape: 'one-by-one', tasks: number, submitters: number }
  | { shape: 'bulk', tasks: number, batch: number }
  | { shape: 'round-trip', samples: number, warmup: number }
  | { shape: 'deep', depths: number[], samples: number }

/** `cpuUs`: the producer's own CPU (process.cpuUsage) over the request. */
export type ProducerReply =
  | { shape: 'one-by-one' | 'bulk', submitMs: number, totalMs: number, cpuUs: number }
  | { shape: 'round-trip', forms: Record<string, number[]>, cpuUs: number }
  | { shape: 'deep', depths: Record<string, { submit: number[], claim: number[], fillMs: number }>, cpuUs: number }
