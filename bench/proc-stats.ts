/** What /proc says about another process: its CPU time and resident memory. */
import { readFileSync } from 'node:fs'

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
