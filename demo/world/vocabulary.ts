import { COLOURS, COUNT_WORDS, KIND_NOUNS, SIZES, pluralOf } from "./attributes.ts";
import { CAPTION_PROMPTS, CAPTION_TEMPLATES, RELATION_PHRASES, RELATION_TEMPLATE, TEXT_MENTION_TEMPLATE } from "./captions.ts";
import { PAINTED_WORDS } from "./stroke-font.ts";
import { QA_TEMPLATES } from "./qa.ts";
import { worldTokenize } from "./tokenize.ts";
import { ZERO_SHOT_TEMPLATE } from "./zero-shot.ts";

/**
 * The closed vocabulary of the shapes world: every token (under worldTokenize) that any prompt,
 * caption, relation sentence, QA item, hard negative or zero-shot prompt can contain. Sorted,
 * without special tokens (the tokenizer adds its own).
 *
 * @example
 * const vocab = worldVocabulary(); // ["a", "above", "an", "and", …, "yellow", ",", ".", "?"]
 */
export function worldVocabulary(): string[] {
  const words = new Set<string>();
  const add = (text: string): void => worldTokenize(text.replace(/\{[A-Za-z]+\}/g, " ")).forEach((t) => words.add(t));
  [...CAPTION_PROMPTS, ...CAPTION_TEMPLATES, RELATION_TEMPLATE, ZERO_SHOT_TEMPLATE, TEXT_MENTION_TEMPLATE, ...PAINTED_WORDS].forEach(add);
  Object.values(RELATION_PHRASES).flat().forEach(add);
  Object.values(QA_TEMPLATES).flat().forEach(add);
  // Slot fillers.
  ["is", "are", "a", "an", "and", ",", ...COLOURS, ...SIZES, ...COUNT_WORDS.slice(1)].forEach(add);
  for (const nouns of Object.values(KIND_NOUNS)) for (const n of nouns) { add(n); add(pluralOf(n)); }
  const letters = [...words].filter((w) => /^[a-z]/.test(w)).sort();
  const symbols = [...words].filter((w) => !/^[a-z]/.test(w)).sort();
  return [...letters, ...symbols];
}
