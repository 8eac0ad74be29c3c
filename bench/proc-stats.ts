/** What /proc says about another process: its CPU time and resident memory. */
import { readdirSync, readFileSync } from 'node:fs'

/** utime + stime of a process, in ms (clock ticks of 10 ms). */
export function cpuMs (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

export function rssMb (pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)\s+kB/)
  return m === null ? NaN : Number(m[1]) / 1024
}

/** Write-type system calls (write, writev, pwrite, …) a process has made so far: /proc/<pid>/io syscw. */
export function writeSyscalls (pid: number): number {
  const m = readFileSync(`/proc/${pid}/io`, 'utf8').match(/syscw:\s+(\d+)/)
  return m === null ? NaN : Number(m[1])
}

/**
 * CPU of a process and everything under it, in ms: its own utime + stime, its reaped
 * children's (cutime + cstime), and every live descendant's. A difference of two
 * readings counts a child that exited in between exactly once. (PostgreSQL: the
 * postmaster and its backends, checkpointer, WAL writer, …)
 */
export function treeCpuMs (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  let ms = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 10
  for (const child of childPids(pid)) {
    try { ms += treeCpuMs(child) } catch { /* exited meanwhile: reaped into the parent's cutime */ }
  }
  return ms
}

function childPids (pid: number): number[] {
  const out: number[] = []
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter((s) => s !== '').map(Number))
    } catch { /* thread gone */ }
  }
  return out
}
