import { describe, expect, it } from 'vitest';
import { nodeCapacity } from '../../src/agent/docker/capacity.js';
import { createContainerBody, readState } from '../../src/agent/docker/container-config.js';
import { withTag, type EngineContainerState } from '../../src/agent/docker/engine.js';

const state = (s: Partial<EngineContainerState>): EngineContainerState => ({
  Status: 'exited',
  Running: false,
  OOMKilled: false,
  ExitCode: 0,
  Error: '',
  StartedAt: '',
  FinishedAt: '',
  ...s,
});

describe('Docker container state and reasons', () => {
  it('reads the reasons of DESIGN.md section 7 from the engine state', () => {
    expect(readState(state({ Status: 'running', Running: true }))).toEqual({ state: 'running', reason: null });
    expect(readState(state({ Status: 'created' }))).toEqual({ state: 'starting', reason: null });
    expect(readState(state({ Status: 'created', Error: 'exec: "x": not found', ExitCode: 127 }))).toEqual({ state: 'failed', reason: 'ContainerCannotRun: exec: "x": not found' });
    expect(readState(state({ ExitCode: 3 }))).toEqual({ state: 'failed', reason: 'Error: exit code 3' });
    expect(readState(state({ ExitCode: 0 }))).toEqual({ state: 'failed', reason: 'Error: exit code 0' });
    expect(readState(state({ ExitCode: 137, OOMKilled: true }))).toEqual({ state: 'failed', reason: 'OOMKilled' });
    expect(readState(state({ Status: 'dead', ExitCode: 137 }))).toEqual({ state: 'failed', reason: 'Error: exit code 137' });
  });

  it('leaves out the command, GPUs and revision when the spec has none', () => {
    const body = createContainerBody(
      { replicaId: 'r', deploymentId: 'd', image: 'i', resources: { cpuCores: 0.5, memoryMb: 512, gpuUnits: 0, storageGb: 1 } },
      { node: 'n', networkMode: 'bridge', stopTimeoutSec: 10 },
    );
    expect(body).not.toHaveProperty('Cmd');
    expect(body.Env).toEqual([]);
    expect(body.Labels).toEqual({ 'io.steady.replica-id': 'r', 'io.steady.deployment-id': 'd', 'io.steady.node': 'n' });
    expect(body.HostConfig).not.toHaveProperty('DeviceRequests');
    expect(body.HostConfig).toMatchObject({ Memory: 536_870_912, MemorySwap: 536_870_912, NanoCpus: 500_000_000, NetworkMode: 'bridge', Privileged: false });
  });

  it('pulls the latest tag of an untagged image, as docker does, and keeps tags, digests and registry ports', () => {
    expect(withTag('nginx')).toBe('nginx:latest');
    expect(withTag('nginx:1.27')).toBe('nginx:1.27');
    expect(withTag('127.0.0.1:5000/team/app')).toBe('127.0.0.1:5000/team/app:latest');
    expect(withTag('127.0.0.1:5000/team/app:2')).toBe('127.0.0.1:5000/team/app:2');
    expect(withTag('nginx@sha256:abc')).toBe('nginx@sha256:abc');
  });
});

describe('Docker node capacity', () => {
  const machine = { cpuCores: 8, memoryMb: 16_000, freeStorageGb: 200, dockerRootDir: '/var/lib/docker' };
  const reserves = { reserveCpuCores: 0.5, reserveMemoryMb: 1024 };

  it('is the machine minus the reserves, GPUs only when given', () => {
    expect(nodeCapacity(machine, reserves)).toEqual({ cpuCores: 7.5, memoryMb: 14_976, storageGb: 200, gpuUnits: 0 });
  });

  it('takes given values as they are, and never goes below zero', () => {
    expect(nodeCapacity(machine, { ...reserves, cpuCores: 2, memoryMb: 4096, storageGb: 10, gpuUnits: 1 })).toEqual({ cpuCores: 2, memoryMb: 4096, storageGb: 10, gpuUnits: 1 });
    expect(nodeCapacity({ ...machine, cpuCores: 1 }, { reserveCpuCores: 2, reserveMemoryMb: 0 }).cpuCores).toBe(0);
  });

  it('asks for --storage-gb when the engine data root cannot be read from here', () => {
    expect(() => nodeCapacity({ ...machine, freeStorageGb: null }, reserves)).toThrow(/--storage-gb/);
  });
});
