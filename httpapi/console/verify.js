// verify.js: verifies an Indelible event receipt in the browser, trusting
// the server for nothing but bytes. A receipt is a c2sp.org/tlog-proof
// document whose extra line carries base64(salt || event_bytes); it is
// checked with WebCrypto alone:
//
//   commitment = SHA-256("indelible/event/v1" || 0x00 || salt || event_bytes)
//   leaf       = SHA-256(0x00 || commitment)                      (RFC 6962)
//   root       = the RFC 6962 / RFC 9162 inclusion path from leaf
//   the checkpoint note carries an Ed25519 signature by the log key
//   (c2sp.org/signed-note) and Ed25519 cosignature/v1 lines by witnesses
//   (c2sp.org/tlog-cosignature), of which a quorum must verify.
//
// The rules follow the Go verifier byte for byte (tlog.ParseReceipt,
// tlog.Policy.Open, the event commitment, tlog.CheckInclusion): the tests
// run both on the same receipts and on mutations of them and compare verdicts.
// This module touches no DOM, so it runs in tests and workers alike.

const enc = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
// latin1 maps each byte to one character: comparisons with ASCII are exact.
const latin1 = new TextDecoder("latin1");

export const RECEIPT_HEADER = "c2sp.org/tlog-proof@v1";
const MAX_CHECKPOINT = 64 << 10;
const MAX_EXTRA = 1 << 20;
const MAX_PROOF_HASHES = 63;
const SALT_SIZE = 32;
const MAX_EVENT_BYTES = 64 << 10;
const MAX_SIGS = 100;
const EXT_MAX_LINES = 16;
const COMMITMENT_LABEL = enc.encode("indelible/event/v1");
const EM_DASH_PREFIX = enc.encode("\u2014 ");
const ALG_ED25519 = 0x01;
const ALG_COSIG_V1 = 0x04;
const MAX_INT64 = (1n << 63n) - 1n;

// ---- bytes and encodings ----

export function concat(...parts) {
  return concatAll(parts);
}

// concatAll joins an array of byte arrays (any number: no spread arguments).
export function concatAll(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function toBase64(b) {
  let s = "";
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    s += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    s += i + 1 < b.length ? B64[(n >> 6) & 63] : "=";
    s += i + 2 < b.length ? B64[n & 63] : "=";
  }
  return s;
}

// fromBase64 decodes standard padded base64. With strict, the encoding must
// be canonical (unused trailing bits zero), as Go's Strict decoder demands;
// without, it accepts what Go's lenient StdEncoding accepts. It returns null
// on any error.
export function fromBase64(s, strict = true) {
  if (s.length % 4 !== 0) return null;
  const out = [];
  for (let i = 0; i < s.length; i += 4) {
    const q = s.slice(i, i + 4);
    const last = i + 4 === s.length;
    let pad = 0;
    if (q[3] === "=") pad = q[2] === "=" ? 2 : 1;
    if (pad && !last) return null;
    const v = [];
    for (let j = 0; j < 4 - pad; j++) {
      const c = B64.indexOf(q[j]);
      if (c < 0) return null;
      v.push(c);
    }
    if (pad === 2 && q[2] !== "=") return null;
    const n = ((v[0] << 18) | (v[1] << 12) | ((v[2] ?? 0) << 6) | (v[3] ?? 0)) >>> 0;
    out.push((n >> 16) & 255);
    if (pad < 2) out.push((n >> 8) & 255);
    if (pad < 1) out.push(n & 255);
    if (strict && ((pad === 1 && (n & 0xff)) || (pad === 2 && (n & 0xffff)))) return null;
  }
  return new Uint8Array(out);
}

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

const leafPrefix = new Uint8Array([0]);
const nodePrefix = new Uint8Array([1]);
export const leafHash = (data) => sha256(leafPrefix, data);
export const nodeHash = (l, r) => sha256(nodePrefix, l, r);

export function commitment(salt, eventBytes) {
  return sha256(COMMITMENT_LABEL, new Uint8Array([0]), salt, eventBytes);
}

// ---- names, numbers (Go's rules) ----

// isSpace is Go's unicode.IsSpace.
function isSpace(c) {
  return (c >= 9 && c <= 13) || c === 32 || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f ||
    c === 0x205f || c === 0x3000;
}

// isControl is Go's unicode.IsControl.
const isControl = (c) => c < 0x20 || (c >= 0x7f && c <= 0x9f);

// validNoteName is x/mod's isValidName: non-empty, no spaces, no '+'.
function validNoteName(s) {
  if (s === "" || s.includes("+")) return false;
  for (const ch of s) if (isSpace(ch.codePointAt(0))) return false;
  return true;
}

// validOrigin is tlog.ValidOrigin: a note name with no control characters.
function validOrigin(s) {
  if (!validNoteName(s)) return false;
  for (const ch of s) if (isControl(ch.codePointAt(0))) return false;
  return true;
}

// parseSize is tlog.ParseSize: decimal, no sign, no leading zeros, int64.
export function parseSize(s) {
  if (!/^(0|[1-9][0-9]*)$/.test(s)) return null;
  const n = BigInt(s);
  return n > MAX_INT64 ? null : n;
}

function parseHash(s) {
  if (s.length !== 44) return null;
  const b = fromBase64(s, true);
  return b && b.length === 32 ? b : null;
}

export function decodeUTF8(b) {
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

function lastIndexOfNN(b) {
  for (let i = b.length - 2; i >= 0; i--) if (b[i] === 10 && b[i + 1] === 10) return i;
  return -1;
}

// ---- keys ----

// parseVKey parses a note verifier key "<name>+<hex id>+<base64(type||key)>"
// of the given type (0x01 log key, 0x04 cosignature/v1 key) and checks its
// key ID: SHA-256(name || "\n" || type || key)[:4].
export async function parseVKey(vkey, type) {
  const i = vkey.indexOf("+");
  const j = i < 0 ? -1 : vkey.indexOf("+", i + 1);
  if (j < 0) throw new Error("not <name>+<id>+<key>");
  const name = vkey.slice(0, i);
  const idHex = vkey.slice(i + 1, j);
  const key = fromBase64(vkey.slice(j + 1), type === ALG_COSIG_V1);
  if (!validNoteName(name) || (type === ALG_COSIG_V1 && !validOrigin(name))) throw new Error("bad key name");
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new Error("key ID is not 8 hex digits");
  if (!key || key.length !== 33 || key[0] !== type) {
    throw new Error(type === ALG_ED25519 ? "not an Ed25519 note key (type 0x01)" : "not an Ed25519 cosignature/v1 key (type 0x04)");
  }
  const id = parseInt(idHex, 16) >>> 0;
  const h = await sha256(enc.encode(name), new Uint8Array([10]), key);
  const want = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
  if (id !== want) throw new Error("key ID does not match the key");
  const pub = key.slice(1);
  let cryptoKey = null;
  try {
    cryptoKey = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    throw new Error("this browser cannot import Ed25519 keys (" + e.message + ")");
  }
  return { name, id, type, pub, cryptoKey, vkey };
}

async function ed25519Verify(key, sig, msg) {
  if (sig.length !== 64) return false;
  try {
    return await crypto.subtle.verify({ name: "Ed25519" }, key.cryptoKey, sig, msg);
  } catch {
    return false;
  }
}

// ---- receipt ----

// parseReceipt is tlog.ParseReceipt: the strict c2sp.org/tlog-proof form.
// It throws an Error naming the problem.
export function parseReceipt(data) {
  if (data.length > MAX_CHECKPOINT + Math.floor((4 * MAX_EXTRA) / 3) + 4096) throw new Error("receipt too large");
  let pos = 0;
  const line = () => {
    const i = data.indexOf(10, pos);
    if (i < 0) return null;
    const l = data.subarray(pos, i);
    pos = i + 1;
    return l;
  };
  const ascii = (b) => latin1.decode(b);
  let l = line();
  if (l === null || ascii(l) !== RECEIPT_HEADER) throw new Error(`missing "${RECEIPT_HEADER}" header line`);
  l = line();
  if (l === null) throw new Error("truncated");
  const r = { extra: null, index: 0n, proof: [], checkpoint: null };
  let s = ascii(l);
  if (s.startsWith("extra ")) {
    const rest = s.slice(6);
    if (rest.length > 4 * Math.ceil(MAX_EXTRA / 3)) throw new Error("extra data too large");
    const extra = fromBase64(rest, true);
    if (!extra) throw new Error("extra line is not canonical base64");
    r.extra = extra;
    l = line();
    if (l === null) throw new Error("truncated");
    s = ascii(l);
  }
  if (!s.startsWith("index ")) throw new Error("missing index line");
  const idx = parseSize(s.slice(6));
  if (idx === null) throw new Error("bad index " + JSON.stringify(s.slice(6)));
  r.index = idx;
  for (;;) {
    l = line();
    if (l === null) throw new Error("truncated proof");
    if (l.length === 0) break;
    if (r.proof.length >= MAX_PROOF_HASHES) throw new Error(`more than ${MAX_PROOF_HASHES} proof hashes`);
    const h = l.length === 44 ? parseHash(ascii(l)) : null;
    if (!h) throw new Error("proof line is not a base64 SHA-256 hash");
    r.proof.push(h);
  }
  const cp = data.subarray(pos);
  if (cp.length === 0) throw new Error("missing checkpoint");
  if (lastIndexOfNN(cp) < 0 || cp[cp.length - 1] !== 10) throw new Error("checkpoint is not a signed note");
  r.checkpoint = cp.slice();
  return r;
}

// parseCheckpointText is tlog.ParseCheckpoint.
export function parseCheckpointText(text) {
  if (!text.endsWith("\n")) throw new Error("checkpoint text does not end in a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new Error("checkpoint has fewer than three lines");
  if (lines.length - 3 > EXT_MAX_LINES) throw new Error("too many extension lines");
  if (!validOrigin(lines[0])) throw new Error("invalid origin line");
  const size = parseSize(lines[1]);
  if (size === null) throw new Error("bad size line");
  const root = parseHash(lines[2]);
  if (!root) throw new Error("bad root hash line");
  for (const e of lines.slice(3)) {
    if (e === "") throw new Error("empty extension line");
    for (const ch of e) if (isControl(ch.codePointAt(0))) throw new Error("control character in extension line");
  }
  return { origin: lines[0], size, root, rootB64: lines[2], extension: lines.slice(3) };
}

// splitNote parses a signed note the way x/mod's note.Open does, plus
// tlog.OpenNote's canonical-base64 rule: text, then one entry per signature
// line {name, id, sig (bytes after the key ID), b64}. It verifies nothing.
export function splitNote(msg) {
  if (msg.length > MAX_CHECKPOINT) throw new Error(`note larger than ${MAX_CHECKPOINT} bytes`);
  const str = decodeUTF8(msg);
  if (str === null) throw new Error("note is not valid UTF-8");
  for (let i = 0; i < msg.length; i++) if (msg[i] < 0x20 && msg[i] !== 10) throw new Error("control character in note");
  const split = lastIndexOfNN(msg);
  if (split < 0) throw new Error("no blank line before the signatures");
  const text = msg.subarray(0, split + 1);
  const sigs = msg.subarray(split + 2);
  if (sigs.length === 0 || sigs[sigs.length - 1] !== 10) throw new Error("no signature lines");
  const out = [];
  let pos = 0;
  while (pos < sigs.length) {
    const i = sigs.indexOf(10, pos);
    const line = sigs.subarray(pos, i);
    pos = i + 1;
    if (line.length < EM_DASH_PREFIX.length || !equalBytes(line.subarray(0, EM_DASH_PREFIX.length), EM_DASH_PREFIX)) {
      throw new Error("signature line does not start with an em dash");
    }
    const rest = utf8.decode(line.subarray(EM_DASH_PREFIX.length));
    const sp = rest.indexOf(" ");
    const name = sp < 0 ? rest : rest.slice(0, sp);
    const b64 = sp < 0 ? "" : rest.slice(sp + 1);
    const sig = fromBase64(b64, true);
    if (!sig || !validNoteName(name) || b64 === "" || sig.length < 5) throw new Error("malformed signature line");
    if (out.length + 1 > MAX_SIGS) throw new Error("too many signatures");
    const id = ((sig[0] << 24) | (sig[1] << 16) | (sig[2] << 8) | sig[3]) >>> 0;
    out.push({ name, id, sig: sig.subarray(4), b64 });
  }
  return { text, textStr: utf8.decode(text), sigs: out };
}

export function cosignatureMessage(text, ts) {
  return concat(enc.encode(`cosignature/v1\ntime ${ts}\n`), text);
}

// ---- Merkle proofs (RFC 9162 section 2.1.3.2 and 2.1.4.2) ----

// rootFromInclusion returns the root the inclusion path leads to, or null
// if the path has the wrong length for (index, size).
export async function rootFromInclusion(index, size, leaf, proof) {
  if (index < 0n || index >= size) return null;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

// checkConsistency reports whether the tree (m, oldRoot) is a prefix of
// (n, newRoot) by the RFC 9162 consistency proof.
export async function checkConsistency(m, oldRoot, n, newRoot, proof) {
  if (m < 0n || m > n || proof.length > MAX_PROOF_HASHES) return false;
  if (m === n) return proof.length === 0 && equalBytes(oldRoot, newRoot);
  if (m === 0n) return proof.length === 0;
  if (proof.length === 0) return false;
  let path = proof;
  if ((m & (m - 1n)) === 0n) path = [oldRoot, ...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot);
}

// ---- checkpoint under a policy ----

// openCheckpoint verifies a signed checkpoint note against the keys, as
// tlog.Policy.Open does. It never throws: it returns
// {ok, error, checkpoint, log: {present, ok}, witnesses: [{name, present,
// ok, time}], cosigned, quorum}. keys: {log, witnesses, quorum} as returned
// by loadKeys.
export async function openCheckpoint(msg, keys) {
  const res = { ok: false, error: "", checkpoint: null, log: { present: false, ok: false }, witnesses: [], cosigned: 0, quorum: keys.quorum };
  for (const w of keys.witnesses) res.witnesses.push({ name: w.name, vkey: w.vkey, present: false, ok: false, time: null });
  let note;
  try {
    note = splitNote(msg);
  } catch (e) {
    res.error = "malformed checkpoint note: " + e.message;
    return res;
  }
  const known = [keys.log, ...keys.witnesses];
  const seen = new Set();
  let invalid = "";
  for (const s of note.sigs) {
    const k = known.find((v) => v.name === s.name && v.id === s.id);
    if (!k) continue; // unknown signers are ignored
    const key = `${k.name}+${k.id}`;
    if (seen.has(key)) continue; // x/mod drops repeats by one key
    seen.add(key);
    let ok;
    let time = null;
    if (k === keys.log) {
      ok = await ed25519Verify(k, s.sig, note.text);
      res.log = { present: true, ok };
    } else {
      const w = res.witnesses[keys.witnesses.indexOf(k)];
      ok = false;
      if (s.sig.length === 72) {
        const dv = new DataView(s.sig.buffer, s.sig.byteOffset, 8);
        const ts = dv.getBigUint64(0);
        if (ts <= MAX_INT64) {
          time = new Date(Number(ts) * 1000);
          ok = await ed25519Verify(k, s.sig.subarray(8), cosignatureMessage(note.text, ts));
        }
      }
      Object.assign(w, { present: true, ok, time });
    }
    if (!ok && !invalid) invalid = k === keys.log ? "the log's signature does not verify" : `the cosignature by ${k.name} does not verify`;
  }
  if (invalid) {
    res.error = invalid;
    return res;
  }
  if (!res.log.present && !res.witnesses.some((w) => w.present)) {
    res.error = `no signature by the log key ${keys.log.name}`;
    return res;
  }
  let cp;
  try {
    cp = parseCheckpointText(note.textStr);
  } catch (e) {
    res.error = "malformed checkpoint: " + e.message;
    return res;
  }
  res.checkpoint = cp;
  if (cp.origin !== keys.log.name) {
    res.error = `origin "${cp.origin}", the log key is for "${keys.log.name}"`;
    return res;
  }
  if (!res.log.present) {
    res.error = `no signature by the log key ${keys.log.name}`;
    return res;
  }
  res.cosigned = res.witnesses.filter((w) => w.ok).length;
  if (res.cosigned < keys.quorum) {
    res.error = `cosigned by ${res.cosigned} of ${keys.witnesses.length} witnesses, ${keys.quorum} required`;
    return res;
  }
  res.ok = true;
  return res;
}

// loadKeys parses {log: vkey, witnesses: [vkey], quorum} into verifier keys.
// quorum 0 or absent means all witnesses. It throws on a bad key or policy.
export function loadKeys(spec) {
  const id = JSON.stringify([spec.log, spec.witnesses || [], spec.quorum || 0]);
  let p = keyCache.get(id);
  if (!p) {
    p = loadKeysUncached(spec);
    keyCache.set(id, p);
    p.catch(() => keyCache.delete(id));
  }
  return p;
}

// keyCache holds parsed key sets (imported CryptoKeys) by their spec.
const keyCache = new Map();

async function loadKeysUncached({ log, witnesses = [], quorum = 0 }) {
  const lk = await parseVKey(log, ALG_ED25519);
  const ws = [];
  for (const w of witnesses) {
    const k = await parseVKey(w, ALG_COSIG_V1);
    if (k.name === lk.name) throw new Error(`witness key ${k.name} has the log's own name`);
    if (ws.some((o) => o.name === k.name && o.id === k.id)) throw new Error(`witness key ${k.name} given twice`);
    ws.push(k);
  }
  const q = quorum || ws.length;
  if (q < 0 || q > ws.length) throw new Error(`quorum ${q} of ${ws.length} witnesses`);
  return { log: lk, witnesses: ws, quorum: q };
}

// ---- the whole receipt ----

// verifyReceipt verifies an event receipt (bytes) against keys ({log,
// witnesses, quorum} vkey strings). It returns {ok, steps, event,
// eventBytes, commitment, index, checkpoint}: steps is the ordered list {id, title, ok (true, false, or
// null when not run or not applicable), detail}; ok is true only if every
// step that ran passed. expect may name the record being shown: its index
// (a BigInt) and commitment (bytes), which the receipt must then match.
export async function verifyReceipt(data, keySpec, expect = {}) {
  const expectedCommitment = expect.commitment || null;
  const steps = [];
  const step = (id, title) => {
    const s = { id, title, ok: null, detail: "" };
    steps.push(s);
    return s;
  };
  const out = { ok: false, steps, event: null, eventBytes: null, commitment: null, index: null, checkpoint: null, failed: null };
  const fail = (s, detail) => {
    s.ok = false;
    s.detail = detail;
    out.failed = out.failed || s.id;
    return out;
  };
  const sFormat = step("format", "Receipt format (c2sp.org/tlog-proof)");
  const sOpening = step("opening", "Opening: salt and event bytes from the extra line");
  const sCommit = step("commitment", 'Commitment SHA-256("indelible/event/v1" || 0x00 || salt || event_bytes)');
  const sLeaf = step("leaf", "RFC 6962 leaf hash SHA-256(0x00 || commitment)");
  const sKeys = step("keys", "Verifier keys (log and witnesses)");
  const sNote = step("note", "Checkpoint note (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)");
  const sLog = step("logsig", "Log signature (Ed25519) on the checkpoint");
  const sCosig = step("cosignatures", "Witness cosignatures (cosignature/v1, Ed25519)");
  const sIncl = step("inclusion", "Merkle inclusion path to the checkpoint root (RFC 6962)");

  if (!globalThis.crypto || !crypto.subtle) {
    return fail(sFormat, "this page has no WebCrypto (it needs HTTPS or localhost)");
  }
  let r;
  try {
    r = parseReceipt(data);
  } catch (e) {
    return fail(sFormat, e.message);
  }
  out.index = r.index;
  if (expect.index !== undefined && expect.index !== r.index) {
    return fail(sFormat, `the receipt is for index ${r.index}, not ${expect.index}`);
  }
  sFormat.ok = true;
  sFormat.detail = `index ${r.index}, ${r.proof.length} proof hashes, ${r.extra ? r.extra.length : 0} extra bytes`;

  if (!r.extra) return fail(sOpening, "the receipt carries no extra line (salt and event)");
  if (r.extra.length < SALT_SIZE + 2 || r.extra.length > SALT_SIZE + MAX_EVENT_BYTES) {
    return fail(sOpening, `extra is ${r.extra.length} bytes: want 32 bytes of salt and 2 to ${MAX_EVENT_BYTES} bytes of event`);
  }
  const salt = r.extra.subarray(0, SALT_SIZE);
  const eventBytes = r.extra.subarray(SALT_SIZE);
  out.eventBytes = eventBytes;
  try {
    out.event = JSON.parse(decodeUTF8(eventBytes));
  } catch {
    out.event = null;
  }
  sOpening.ok = true;
  sOpening.detail = `salt ${toHex(salt).slice(0, 16)}…, ${eventBytes.length} event bytes`;

  const c = await commitment(salt, eventBytes);
  out.commitment = c;
  sCommit.detail = toBase64(c);
  if (expectedCommitment && !equalBytes(c, expectedCommitment)) {
    return fail(sCommit, `${toBase64(c)} does not equal the record's commitment ${toBase64(expectedCommitment)}`);
  }
  sCommit.ok = true;

  const leaf = await leafHash(c);
  sLeaf.ok = true;
  sLeaf.detail = toBase64(leaf);

  let keys;
  try {
    keys = await loadKeys(keySpec);
  } catch (e) {
    return fail(sKeys, e.message);
  }
  sKeys.ok = true;
  sKeys.detail = `log ${keys.log.name}, ${keys.witnesses.length} witnesses, quorum ${keys.quorum}`;

  const o = await openCheckpoint(r.checkpoint, keys);
  out.checkpoint = o.checkpoint;
  sCosig.witnesses = o.witnesses;
  // Which step failed: a bad note, the log's signature, or the witnesses.
  const noteBad = o.error.startsWith("malformed") || o.error.startsWith("origin");
  if (noteBad) return fail(sNote, o.error);
  sNote.ok = true;
  if (o.checkpoint) sNote.detail = `${o.checkpoint.origin}, size ${o.checkpoint.size}, root ${o.checkpoint.rootB64}`;
  if (!o.log.ok) return fail(sLog, o.error || "no valid signature by the log key");
  sLog.ok = true;
  sLog.detail = `by ${keys.log.name}+${keys.log.id.toString(16).padStart(8, "0")}`;
  if (!o.ok) return fail(sCosig, o.error);
  sCosig.ok = true;
  sCosig.detail = `${o.cosigned} of ${keys.witnesses.length} verified, ${keys.quorum} required`;

  const root = await rootFromInclusion(r.index, o.checkpoint.size, leaf, r.proof);
  if (!root) return fail(sIncl, `the path of ${r.proof.length} hashes does not fit index ${r.index} in a tree of size ${o.checkpoint.size}`);
  if (!equalBytes(root, o.checkpoint.root)) return fail(sIncl, `the path leads to ${toBase64(root)}, not the checkpoint root ${o.checkpoint.rootB64}`);
  sIncl.ok = true;
  sIncl.detail = `index ${r.index} of ${o.checkpoint.size} leads to ${o.checkpoint.rootB64}`;
  out.ok = true;
  return out;
}
