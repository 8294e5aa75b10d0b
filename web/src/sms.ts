// SMS encoding and segment count, the same rules as the server's
// `centralino_gsm::encode` (crates/centralino-gsm/src/lib.rs): GSM 03.38
// 7-bit with its extension table when every character fits, else UCS-2 for
// the whole text. GSM: 160 septets in one SMS, 153 per part; an extension
// character takes two septets and is never split from its escape. UCS-2: 70
// UTF-16 units, 67 per part; a surrogate pair is never split.

export type SmsEncoding = 'gsm7' | 'ucs2';

export interface SmsCount {
  encoding: SmsEncoding;
  /** Septets (GSM) or UTF-16 units (UCS-2) the whole text takes. */
  units: number;
  segments: number;
}

const BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const EXTENSION = '\f^{}\\[~]|€';

const basic = new Set([...BASIC].filter((c) => c !== '\u001b'));
const extension = new Set([...EXTENSION]);

/** Septets per character, or null when GSM cannot carry the text. */
function septets(text: string): number[] | null {
  const out: number[] = [];
  for (const c of text) {
    if (basic.has(c)) out.push(1);
    else if (extension.has(c)) out.push(2);
    else return null;
  }
  return out;
}

/**
 * Counts segments of `length` units cut `part` at a time, where
 * `binds(i)` says unit `i` must stay with unit `i + 1`.
 */
function cut(length: number, single: number, part: number, binds: (i: number) => boolean): number {
  if (length <= single) return 1;
  let count = 0;
  let start = 0;
  while (start < length) {
    let end = Math.min(start + part, length);
    if (end < length && end > start + 1 && binds(end - 1)) end -= 1;
    count += 1;
    start = end;
  }
  return count;
}

export function encode(text: string): SmsCount {
  const perChar = septets(text);
  if (perChar) {
    // Mark each escape: the first septet of an extension character.
    const escape: boolean[] = [];
    for (const n of perChar) {
      if (n === 2) escape.push(true, false);
      else escape.push(false);
    }
    const units = escape.length;
    return { encoding: 'gsm7', units, segments: cut(units, 160, 153, (i) => escape[i] === true) };
  }
  const units = text.length;
  const high = (i: number) => {
    const u = text.charCodeAt(i);
    return u >= 0xd800 && u < 0xdc00;
  };
  return { encoding: 'ucs2', units, segments: cut(units, 70, 67, high) };
}
