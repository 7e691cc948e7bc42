// A program started through dieWithParent dies when its parent is SIGKILLed; a plain spawn (the
// control) survives it, re-parented to init.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { dieWithParent, setprivPath } from './parent-death.js';
import { goneWithin } from '../testing/processes.js';

const MODULE = new URL('./parent-death.js', import.meta.url).href;

/** A Node parent that starts `sleep 300` (through dieWithParent when `wrap`) and prints its pid. */
async function parentWithChild(wrap: boolean): Promise<{ parent: ReturnType<typeof spawn>; child: number }> {
  const code = `
    const { spawn } = await import('node:child_process');
    const { dieWithParent } = await import(${JSON.stringify(MODULE)});
    const [cmd, args] = ${wrap} ? dieWithParent('sleep', ['300']) : ['sleep', ['300']];
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('spawn', () => console.log(c.pid));
    setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const child = await new Promise<number>((resolve, reject) => {
    parent.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
    parent.once('exit', (c) => reject(new Error(`parent exited with ${c}`)));
  });
  return { parent, child };
}

test('a program started through dieWithParent dies with a SIGKILLed parent; a plain one does not', { skip: setprivPath() ? false : 'util-linux setpriv is not installed' }, async () => {
  const wrapped = await parentWithChild(true);
  const plain = await parentWithChild(false);
  try {
    wrapped.parent.kill('SIGKILL');
    plain.parent.kill('SIGKILL');
    assert.ok(await goneWithin(wrapped.child, 5000), `sleep ${wrapped.child} outlived its SIGKILLed parent`);
    assert.ok(existsSync(`/proc/${plain.child}`), 'control: a plain child survives its parent');
  } finally {
    for (const pid of [wrapped.child, plain.child]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

test('dieWithParent keeps the command and its arguments', () => {
  const [cmd, args] = dieWithParent('virsh', ['event', '--loop']);
  if (setprivPath()) assert.deepEqual([cmd, args], [setprivPath(), ['--pdeathsig', 'KILL', '--', 'virsh', 'event', '--loop']]);
  else assert.deepEqual([cmd, args], ['virsh', ['event', '--loop']]);
});
