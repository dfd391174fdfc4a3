/**
 * The word-level tokenisation every world text follows: lower-case words of letters, and each
 * other non-space character as its own token ("." "," "?"). The vocabulary (vocabulary.ts) is
 * closed under this tokenisation for every text the templates can produce.
 *
 * @example
 * worldTokenize("There is a red circle."); // ["there", "is", "a", "red", "circle", "."]
 */
export function worldTokenize(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+|[^\sa-z]/g) ?? [];
}
