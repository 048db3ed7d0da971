// What counts as one emoji for a reaction: exactly one extended grapheme cluster (Intl.Segmenter)
// that is built as an emoji: a pictograph with its variation selector and skin tone, a ZWJ sequence
// of those, a flag (two regional indicators or a tag sequence), or a keycap.

const segmenter = new Intl.Segmenter('en', { granularity: 'grapheme' });

/** One pictograph with an optional emoji presentation selector and skin tone (a lone regional indicator is half a flag). */
const ELEMENT = String.raw`(?!\p{Regional_Indicator})(?:\p{Extended_Pictographic}|\p{Emoji_Presentation})\uFE0F?\p{Emoji_Modifier}?\uFE0F?`;
const EMOJI = new RegExp(
  [
    String.raw`${ELEMENT}(?:\u200D${ELEMENT})*`,
    String.raw`\p{Regional_Indicator}{2}`,
    // Subdivision flags: a black flag, tag letters, cancel tag (England is 🏴 g b e n g ␡).
    String.raw`\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}`,
    String.raw`[0-9#*]\uFE0F?\u20E3`,
  ]
    .map((form) => `(?:${form})`)
    .join('|')
    .replace(/^/, '^(?:')
    .concat(')$'),
  'u',
);

/** Longest accepted cluster, in UTF-16 code units: the longest standard emoji (kiss with two skin tones) is 15. */
export const EMOJI_MAX_LENGTH = 32;

/** Whether `value` is exactly one emoji grapheme cluster ("👍🏽", "👩‍👩‍👧", "🇺🇦", "1️⃣"; not "ab", "😀😀" or "a"). */
export function isSingleEmoji(value: string): boolean {
  if (value.length === 0 || value.length > EMOJI_MAX_LENGTH) return false;
  const clusters = segmenter.segment(value)[Symbol.iterator]();
  clusters.next();
  if (!clusters.next().done) return false;
  return EMOJI.test(value);
}
