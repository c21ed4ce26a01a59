/**
 * Kept hand-written: zlib from Node plus a CRC table is all 8-bit gray/RGB PNGs need; a PNG library would add a dependency for it.
 *
 * A minimal PNG writer (8-bit grayscale or RGB, no interlace): enough for mask pictures without a native
 * image dependency. Rows are filtered with "none"; zlib (node:zlib) does the compression.
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes `pixels` (row-major, `channels` bytes per pixel: 1 gray, 3 RGB) as a PNG file. */
export function encodePng(width: number, height: number, channels: 1 | 3, pixels: Uint8Array): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`Expected a positive integer image size but received ${width}x${height}`);
  if (pixels.length !== width * height * channels)
    throw new RangeError(`Expected ${width * height * channels} bytes of pixels but received ${pixels.length}`);
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // gray | truecolor
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/** An RGB raster to draw rectangles on. */
export class Canvas {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: [number, number, number] = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3);
  }

  fillRect(x: number, y: number, w: number, h: number, rgb: [number, number, number]): void {
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(this.width, Math.floor(x + w));
    const y1 = Math.min(this.height, Math.floor(y + h));
    for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) this.pixels.set(rgb, (yy * this.width + xx) * 3);
  }

  /** Draws a gray-level map (0 = pruned .. 1 = kept) scaled into the box, kept dark on light. */
  drawDensity(x: number, y: number, w: number, h: number, density: Float32Array, cols: number, rows: number): void {
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const r = Math.min(rows - 1, Math.floor((yy * rows) / h));
        const c = Math.min(cols - 1, Math.floor((xx * cols) / w));
        const v = Math.round(245 - 215 * density[r * cols + c]);
        const px = x + xx;
        const py = y + yy;
        if (px >= 0 && px < this.width && py >= 0 && py < this.height) this.pixels.set([v, v, v], (py * this.width + px) * 3);
      }
    }
  }

  toPng(): Buffer {
    return encodePng(this.width, this.height, 3, this.pixels);
  }
}
