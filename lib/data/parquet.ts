/**
 * Parquet files (Hugging Face `datasets`) through hyparquet, pure JS: opening, finding columns, reading rows in
 * chunks. SNAPPY is built in; GZIP/ZSTD/BROTLI/LZ4 come from `hyparquet-compressors`.
 */
import * as fs from 'fs';
import { pathToFileURL } from 'url';
import { BlockpruneError } from '../runtime/errors';
import { badData, findColumn } from './rows';

// hyparquet is ESM-only: loaded with a real dynamic import from this CommonJS module.
interface HyparquetModule {
  parquetMetadata(file: ArrayBuffer): { num_rows: bigint | number; schema: Array<{ name: string; num_children?: number }> };
  parquetReadObjects(options: {
    file: ArrayBuffer;
    columns?: string[];
    rowStart?: number;
    rowEnd?: number;
    compressors?: unknown;
  }): Promise<Array<Record<string, unknown>>>;
}

// `import()` written through Function so that TypeScript's CommonJS output keeps it a real dynamic import.
const dynamicImport = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

async function importEsm(name: string): Promise<unknown> {
  let resolved: string;
  try {
    resolved = require.resolve(name);
  } catch {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `the npm package ${name} is not installed (npm install ${name})`);
  }
  return dynamicImport(pathToFileURL(resolved).href);
}

let parquetLib: Promise<{ hyparquet: HyparquetModule; compressors: unknown }> | null = null;

function loadParquetLib(): Promise<{ hyparquet: HyparquetModule; compressors: unknown }> {
  if (!parquetLib) {
    parquetLib = (async () => {
      const hyparquet = (await importEsm('hyparquet')) as HyparquetModule;
      let compressors: unknown;
      try {
        compressors = ((await importEsm('hyparquet-compressors')) as { compressors: unknown }).compressors;
      } catch {
        compressors = undefined; // SNAPPY and UNCOMPRESSED still work
      }
      return { hyparquet, compressors };
    })();
    parquetLib.catch(() => {
      parquetLib = null;
    });
  }
  return parquetLib;
}

export interface ParquetSource {
  file: string;
  numRows: number;
  columns: string[];
  /** Rows [start, end) as objects with the requested columns. */
  read(columns: string[], start: number, end: number): Promise<Array<Record<string, unknown>>>;
}

export async function openParquet(file: string): Promise<ParquetSource> {
  const { hyparquet, compressors } = await loadParquetLib();
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new BlockpruneError('E_FILE_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`);
  }
  const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  let meta: ReturnType<HyparquetModule['parquetMetadata']>;
  try {
    meta = hyparquet.parquetMetadata(ab);
  } catch (e) {
    throw badData(`${file}: not a readable parquet file (${(e as Error).message})`);
  }
  // Top-level columns: the root's direct children (skip nested descendants).
  const columns: string[] = [];
  const schema = meta.schema;
  let i = 1;
  const skipSubtree = (): void => {
    const n = schema[i].num_children ?? 0;
    i++;
    for (let k = 0; k < n; k++) skipSubtree();
  };
  while (i < schema.length) {
    columns.push(schema[i].name);
    skipSubtree();
  }
  return {
    file,
    numRows: Number(meta.num_rows),
    columns,
    async read(cols, start, end) {
      try {
        return await hyparquet.parquetReadObjects({ file: ab, columns: cols, rowStart: start, rowEnd: end, compressors });
      } catch (e) {
        throw badData(`${file}: cannot decode rows ${start}..${end - 1}: ${(e as Error).message}`);
      }
    },
  };
}

export function resolveParquetColumn(src: ParquetSource, candidates: readonly string[] | undefined, field: string, required: boolean): string | null {
  const i = findColumn(src.columns, candidates);
  if (i >= 0) return src.columns[i];
  if (required) {
    throw badData(`${src.file}: no ${field} column (tried ${candidates?.join(', ')}; the file has ${src.columns.join(', ')})`);
  }
  return null;
}

/** Reads parquet rows in chunks (so that `limit` stops early) and feeds them to `each` with their row index. */
export async function eachParquetRow(
  src: ParquetSource,
  columns: string[],
  isFull: () => boolean,
  each: (row: Record<string, unknown>, index: number) => boolean,
  limit: number | undefined,
): Promise<void> {
  const chunk = limit !== undefined ? Math.max(256, limit) : Math.max(src.numRows, 1);
  for (let start = 0; start < src.numRows && !isFull(); start += chunk) {
    const end = Math.min(src.numRows, start + chunk);
    const rows = await src.read(columns, start, end);
    for (let k = 0; k < rows.length; k++) if (!each(rows[k], start + k)) return;
  }
}
