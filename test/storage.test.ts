import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsBlobStore } from '../src/storage/fs/index.ts';
import { MemoryBlobStore } from '../src/storage/memory/index.ts';
import { blobStoreSuite } from '../src/storage/testsuite.ts';

blobStoreSuite('memory', async () => new MemoryBlobStore());
blobStoreSuite('fs', async () => FsBlobStore.open({ root: await mkdtemp(path.join(tmpdir(), 'custody-fs-')) }));
