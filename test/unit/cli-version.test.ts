import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runInProcess } from '../support/cli.js';

const packageVersion = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('steady --version', () => {
  it("prints the package's version and exits 0, as -v too; help names the flag", async () => {
    expect(packageVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(await runInProcess(['--version'])).toEqual({ code: 0, stdout: `${packageVersion}\n`, stderr: '' });
    expect(await runInProcess(['-v'])).toEqual({ code: 0, stdout: `${packageVersion}\n`, stderr: '' });
    expect((await runInProcess(['--help'])).stdout).toMatch(/-v, --version\s+print steady's version/);
  });
});
