import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A private Docker engine for the tests (DESIGN.md section 7): its own data root, exec root and socket
 * under a short temporary directory, no bridge and no iptables rules, so it touches nothing else on
 * the machine. Images are made locally from a static busybox; no registry is needed.
 */

/** The test image: a static busybox, `sleep 3600` by default; every busybox applet is on PATH. */
export const BUSYBOX_IMAGE = 'steady-test/busybox:1';

export interface DockerEngineProcess {
  /** `unix:///…/docker.sock` */
  readonly host: string;
  readonly dir: string;
  /** Runs the docker CLI against this engine. */
  docker(args: readonly string[], input?: Buffer): Promise<string>;
  /** Stops the engine the way a service manager does (SIGTERM), leaving its data; `start()` brings it back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Removes every container, stops the engine and deletes its files. */
  destroy(): Promise<void>;
}

function which(command: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim();
  return found === '' ? null : found;
}

/** A static busybox (Debian's busybox-static), or null. */
export function staticBusybox(): string | null {
  for (const candidate of [which('busybox'), '/bin/busybox', '/usr/bin/busybox']) {
    if (!candidate || !fs.existsSync(candidate)) continue;
    const ldd = spawnSync('ldd', [candidate], { encoding: 'utf8' });
    if (`${ldd.stdout}${ldd.stderr}`.includes('not a dynamic executable')) return fs.realpathSync(candidate);
  }
  return null;
}

/** Why the Docker tests cannot run here, or null when they can. */
export function dockerUnavailableReason(): string | null {
  const missing: string[] = [];
  if (!which('dockerd')) missing.push('dockerd (apt-get install docker.io)');
  if (!which('docker')) missing.push('the docker CLI (apt-get install docker.io)');
  if (!staticBusybox()) missing.push('a static busybox (apt-get install busybox-static)');
  const root = process.getuid?.() === 0;
  const inDockerGroup = spawnSync('id', ['-nG'], { encoding: 'utf8' }).stdout.split(/\s+/).includes('docker');
  if (!root && !inDockerGroup) missing.push('root or membership of the docker group (a private dockerd needs it)');
  return missing.length === 0 ? null : `missing ${missing.join(', ')}`;
}

export async function startDockerEngine(): Promise<DockerEngineProcess> {
  // Unix socket paths are limited to about 100 bytes: keep the directory short.
  const dir = fs.mkdtempSync(path.join(os.tmpdir().length < 20 ? os.tmpdir() : '/tmp', 'sd-'));
  const socket = path.join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const log = fs.openSync(path.join(dir, 'dockerd.log'), 'a');

  const docker = dockerCli(host);

  const start = async (): Promise<void> => {
    fs.rmSync(socket, { force: true });
    child = spawn(
      'dockerd',
      [
        `--data-root=${path.join(dir, 'root')}`,
        `--exec-root=${path.join(dir, 'exec')}`,
        `--pidfile=${path.join(dir, 'dockerd.pid')}`,
        `--host=${host}`,
        '--bridge=none',
        '--iptables=false',
        '--ip-masq=false',
      ],
      { stdio: ['ignore', log, log] },
    );
    const proc = child;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    let gone = false;
    void exited.then(() => (gone = true));
    for (let attempt = 0; attempt < 600; attempt++) {
      if (gone) throw new Error(`dockerd exited while starting:\n${tail(path.join(dir, 'dockerd.log'))}`);
      if (fs.existsSync(socket) && spawnSync('docker', ['-H', host, 'version'], { stdio: 'ignore' }).status === 0) return;
      await delay(100);
    }
    throw new Error(`dockerd did not answer within 60 s:\n${tail(path.join(dir, 'dockerd.log'))}`);
  };

  const stop = async (): Promise<void> => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  };

  await start();
  return {
    host,
    dir,
    docker,
    start,
    stop,
    async destroy() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const ids = (await docker(['ps', '-aq']).catch(() => '')).split(/\s+/).filter(Boolean);
        if (ids.length > 0) await docker(['rm', '-f', ...ids]).catch(() => undefined);
      }
      await stop();
      fs.closeSync(log);
      unmountUnder(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the docker CLI against the engine at `host`, with `input` on its stdin. */
export function dockerCli(host: string): (args: readonly string[], input?: Buffer) => Promise<string> {
  return (args, input) =>
    new Promise((resolve, reject) => {
      const p = spawn('docker', ['-H', host, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`docker ${args.join(' ')} exited ${code}: ${err.slice(-4000)}`))));
      p.stdin.end(input);
    });
}

/** What making an image needs: the docker CLI for the engine, and a scratch directory. */
export type ImageMaker = Pick<DockerEngineProcess, 'docker' | 'dir'>;

/** Imports a root file system holding a static busybox and its applets as `tag`. */
export async function importBusyboxImage(engine: ImageMaker, tag = BUSYBOX_IMAGE, cmd: readonly string[] = ['sleep', '3600']): Promise<void> {
  const busybox = staticBusybox();
  if (!busybox) throw new Error('no static busybox');
  const rootfs = fs.mkdtempSync(path.join(engine.dir, 'rootfs-'));
  try {
    fs.mkdirSync(path.join(rootfs, 'bin'));
    fs.mkdirSync(path.join(rootfs, 'tmp'));
    fs.copyFileSync(busybox, path.join(rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a !== '' && a !== 'busybox');
    for (const applet of applets) fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
    const tar = (await run('tar', ['-C', rootfs, '-c', '.'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })).stdout;
    await engine.docker(['import', '--change', `CMD ${JSON.stringify(cmd)}`, '--change', 'ENV PATH=/bin', '-', tag], tar);
  } finally {
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

/** The engine can leave mounts behind (the host network namespace, say): unmount them, deepest first. */
function unmountUnder(dir: string): void {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
