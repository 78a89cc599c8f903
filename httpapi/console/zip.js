// zip.js: a tiny store-only ZIP writer (PKWARE APPNOTE 6.3: local file
// headers, no compression, a central directory, the end record) with its
// own CRC-32. Enough for a bundle of receipts; no library.

import { concatAll } from "./verify.js";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

// crc32 is the CRC-32 of ZIP and PNG (IEEE 802.3, reflected).
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// dosTime returns the MS-DOS time and date fields of d (local fields in
// ZIP's convention; we write UTC so archives are reproducible).
function dosTime(d) {
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  const date = ((Math.max(d.getUTCFullYear(), 1980) - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  return [time, date];
}

// makeZip returns a ZIP archive (a Uint8Array) of files, each {name, data:
// Uint8Array}, stored uncompressed. Names are UTF-8 (flag bit 11).
export function makeZip(files, when = new Date()) {
  const enc = new TextEncoder();
  const [time, date] = dosTime(when);
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name);
    const crc = crc32(f.data);
    const size = f.data.length;
    const lh = new DataView(new ArrayBuffer(30));
    lh.setUint32(0, 0x04034b50, true); // local file header signature
    lh.setUint16(4, 20, true); // version needed: 2.0
    lh.setUint16(6, 0x0800, true); // flags: UTF-8 names
    lh.setUint16(8, 0, true); // method: stored
    lh.setUint16(10, time, true);
    lh.setUint16(12, date, true);
    lh.setUint32(14, crc, true);
    lh.setUint32(18, size, true); // compressed size
    lh.setUint32(22, size, true); // uncompressed size
    lh.setUint16(26, name.length, true);
    lh.setUint16(28, 0, true); // extra field length
    locals.push(new Uint8Array(lh.buffer), name, f.data);

    const ch = new DataView(new ArrayBuffer(46));
    ch.setUint32(0, 0x02014b50, true); // central directory header signature
    ch.setUint16(4, 20, true); // version made by
    ch.setUint16(6, 20, true); // version needed
    ch.setUint16(8, 0x0800, true);
    ch.setUint16(10, 0, true);
    ch.setUint16(12, time, true);
    ch.setUint16(14, date, true);
    ch.setUint32(16, crc, true);
    ch.setUint32(20, size, true);
    ch.setUint32(24, size, true);
    ch.setUint16(28, name.length, true);
    // extra, comment, disk number, internal attributes: 0
    ch.setUint32(38, 0o100644 << 16, true); // external attributes: a regular file, rw-r--r--
    ch.setUint32(42, offset, true); // offset of the local header
    centrals.push(new Uint8Array(ch.buffer), name);
    offset += 30 + name.length + size;
  }
  let cdSize = 0;
  for (const c of centrals) cdSize += c.length;
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); // end of central directory signature
  end.setUint16(8, files.length, true); // entries on this disk
  end.setUint16(10, files.length, true); // entries in total
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true); // offset of the central directory
  return concatAll([...locals, ...centrals, new Uint8Array(end.buffer)]);
}
