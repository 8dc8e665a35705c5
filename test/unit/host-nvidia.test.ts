import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalisePciBusId, parseNvidiaSmiXml } from '../../src/host/nvidia.js';

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}
const fixtureDir = path.join(repoRoot(), 'test', 'fixtures', 'gpu-host-h200');
const xml = fs.readFileSync(path.join(fixtureDir, 'nvidia-smi-q.xml'), 'utf8');

test('the H200 host fixture: one GPU with its name, uuid, bus id, memory and versions', () => {
  const gpus = parseNvidiaSmiXml(xml);
  assert.equal(gpus.length, 1);
  assert.deepEqual(gpus[0], {
    index: 0,
    name: 'NVIDIA H200',
    uuid: 'GPU-52cc09db-4612-69dd-1018-df7cba9febda',
    pciBusId: '0000:00:06.0',
    memTotalMiB: 143771,
    memUsedMiB: 0,
    driverVersion: '580.159.04',
    cudaVersion: '13.0',
  });
});

test('the XML agrees with the CSV query of the same host', () => {
  const csv = fs.readFileSync(path.join(fixtureDir, 'nvidia-smi-query.csv'), 'utf8').trim().split('\n').slice(1);
  const gpus = parseNvidiaSmiXml(xml);
  assert.equal(gpus.length, csv.length);
  csv.forEach((line, i) => {
    const [index, name, uuid, busId, memTotal, memUsed] = line.split(',').map((s) => s.trim());
    assert.equal(gpus[i]!.index, Number(index));
    assert.equal(gpus[i]!.name, name);
    assert.equal(gpus[i]!.uuid, uuid);
    assert.equal(gpus[i]!.pciBusId, normalisePciBusId(busId!));
    assert.equal(gpus[i]!.memTotalMiB, parseInt(memTotal!, 10));
    assert.equal(gpus[i]!.memUsedMiB, parseInt(memUsed!, 10));
  });
});

test('several GPUs keep their order; upper-case 8-digit bus ids are normalised', () => {
  const gpuBlock = /<gpu id="[^"]*">[\s\S]*?\n\t<\/gpu>/.exec(xml)![0];
  const second = gpuBlock
    .replaceAll('00000000:00:06.0', '00000000:3B:00.0')
    .replace('<product_name>NVIDIA H200</product_name>', '<product_name>NVIDIA GeForce RTX 4090 &amp; co</product_name>')
    .replace('GPU-52cc09db-4612-69dd-1018-df7cba9febda', 'GPU-00000000-1111-2222-3333-444444444444')
    .replace('<used>0 MiB</used>', '<used>1234 MiB</used>');
  const two = xml.replace(gpuBlock, `${gpuBlock}\n\t${second}`).replace('<attached_gpus>1<', '<attached_gpus>2<');
  const gpus = parseNvidiaSmiXml(two);
  assert.deepEqual(
    gpus.map((g) => [g.index, g.name, g.pciBusId, g.memUsedMiB]),
    [
      [0, 'NVIDIA H200', '0000:00:06.0', 0],
      [1, 'NVIDIA GeForce RTX 4090 & co', '0000:3b:00.0', 1234],
    ],
  );
  assert.equal(gpus[1]!.uuid, 'GPU-00000000-1111-2222-3333-444444444444');
});

test('bus id normalisation and empty or broken input', () => {
  assert.equal(normalisePciBusId('00000000:3B:00.0'), '0000:3b:00.0');
  assert.equal(normalisePciBusId('0000:AF:00.1'), '0000:af:00.1');
  assert.equal(normalisePciBusId('3b:00.0'), '0000:3b:00.0');
  assert.equal(normalisePciBusId('garbage'), '');
  assert.deepEqual(parseNvidiaSmiXml(''), []);
  assert.deepEqual(parseNvidiaSmiXml('NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'), []);
  assert.deepEqual(parseNvidiaSmiXml('<?xml version="1.0" ?><nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>'), []);
});
