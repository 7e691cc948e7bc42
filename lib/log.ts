// Structured logs with pino: one JSON line per entry with level, time and component. A process
// configures its root logger once (`configureLogging`); components take a child bound to their
// name. Code that takes a plain `log: (msg) => void` callback gets one from `logFunction`.
import pino from 'pino';
import type { DestinationStream, Level, Logger } from 'pino';

export type { Logger, Level };

let root: Logger = pino({ level: process.env.KOVA_LOG_LEVEL || 'info', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));

/** Replaces the process's root logger: its level and where the lines go. */
export function configureLogging(opts: { level?: Level | 'silent'; destination?: DestinationStream; base?: Record<string, unknown> }): Logger {
  root = pino({ level: opts.level ?? 'info', base: { pid: process.pid, ...opts.base } }, opts.destination ?? pino.destination({ fd: 2, sync: true }));
  return root;
}

export function rootLogger(): Logger {
  return root;
}

/** A logger whose lines name `component` (apiserver, controller/instance, agent ...). */
export function componentLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}

/** A `(msg) => void` callback writing at `level`, for code that logs plain messages. */
export function logFunction(logger: Logger, level: Level = 'info'): (msg: string) => void {
  return (msg) => logger[level](msg);
}
