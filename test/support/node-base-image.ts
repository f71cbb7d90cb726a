import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { staticBusybox, type ImageMaker } from './docker-engine.js';

const run = promisify(execFile);

/**
 * A stand-in for the Dockerfile's Node.js base image (no registry is reachable here), made from this
 * machine's own Node.js: the node binary with the shared libraries it links, npm, a static busybox
 * for /bin/sh and the usual tools, /usr/bin/env, and the machine's CA bundle (named in
 * NODE_EXTRA_CA_CERTS, or npm ci fails on a registry behind an intercepting proxy).
 */
export async function importNodeBaseImage(engine: ImageMaker, tag: string): Promise<void> {
  const rootfs = fs.mkdtempSync(path.join(engine.dir, 'node-rootfs-'));
  try {
    const node = fs.realpathSync(process.execPath);
    copyWithLibraries(node, rootfs, '/usr/local/bin/node');
    copyWithLibraries(fs.realpathSync('/usr/bin/env'), rootfs, '/usr/bin/env');

    const npmDir = findNpm(node);
    fs.cpSync(npmDir, path.join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true, dereference: true });
    fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(rootfs, 'usr/local/bin/npm'));
    fs.symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(rootfs, 'usr/local/bin/npx'));

    const busybox = staticBusybox();
    if (!busybox) throw new Error('no static busybox (apt-get install busybox-static)');
    fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
    fs.copyFileSync(busybox, path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    for (const applet of spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n')) {
      const target = path.join(rootfs, 'bin', applet);
      if (applet !== '' && applet !== 'busybox' && !fs.existsSync(target)) fs.symlinkSync('busybox', target);
    }

    const caBundle = process.env.NODE_EXTRA_CA_CERTS ?? process.env.SSL_CERT_FILE ?? '/etc/ssl/certs/ca-certificates.crt';
    const caInImage = '/etc/ssl/certs/ca-certificates.crt';
    const env = ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/root'];
    if (fs.existsSync(caBundle)) {
      fs.mkdirSync(path.join(rootfs, 'etc/ssl/certs'), { recursive: true });
      fs.copyFileSync(caBundle, path.join(rootfs, caInImage));
      env.push(`NODE_EXTRA_CA_CERTS=${caInImage}`);
    }
    // The registry npm uses here, so that `npm ci` in the build reaches the same one.
    const registry = spawnSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).stdout.trim();
    if (registry) env.push(`NPM_CONFIG_REGISTRY=${registry}`);
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) {
      if (process.env[name]) env.push(`${name}=${process.env[name]}`);
    }

    fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n');
    fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
    for (const dir of ['root', 'home/node', 'tmp']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
    fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
    fs.chownSync(path.join(rootfs, 'home/node'), 1000, 1000);

    const tar = (await run('tar', ['-C', rootfs, '-c', '.'], { encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024 })).stdout;
    const changes = env.flatMap((e) => ['--change', `ENV ${e.replace('=', ' ')}`]);
    await engine.docker(['import', ...changes, '--change', 'CMD ["node"]', '-', tag], tar);
  } finally {
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

/** The npm package next to this node (Debian: /usr/lib/node_modules/npm; official builds: ../lib/node_modules/npm). */
function findNpm(node: string): string {
  const candidates = [path.resolve(path.dirname(node), '../lib/node_modules/npm'), '/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm', '/usr/share/nodejs/npm'];
  const onPath = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) candidates.unshift(path.resolve(path.dirname(fs.realpathSync(onPath)), '..'));
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'bin/npm-cli.js')));
  if (!found) throw new Error(`npm not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Copies a dynamically linked binary to `target` in the root file system, with every library `ldd` names, at the same paths. */
function copyWithLibraries(binary: string, rootfs: string, target: string): void {
  const place = (from: string, to: string): void => {
    const dest = path.join(rootfs, to);
    if (fs.existsSync(dest)) return;
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), dest);
    fs.chmodSync(dest, 0o755);
  };
  place(binary, target);
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8' }).stdout;
  for (const line of ldd.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) place(match[1]!, match[1]!);
  }
}
