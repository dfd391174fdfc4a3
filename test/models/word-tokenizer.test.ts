import { describe, expect, test } from "bun:test";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { TokenizerError } from "../../src/models/tokenizer.ts";

const corpus = ["A red circle.", "a blue square, left of a red circle", "two green triangles!"];

describe("WordTokenizer", () => {
  test("vocabulary: specials first in fixed order, then words by count then alphabet", () => {
    const tok = WordTokenizer.fromCorpus(corpus);
    const v = tok.toJSON();
    expect(v.tokens.slice(0, 5)).toEqual(["<pad>", "<bos>", "<eos>", "<unk>", "<image>"]);
    // "a" appears 3 times, "circle"/"red" twice, then singletons alphabetically (",", ".", "!" sort before letters)
    expect(v.tokens.slice(5, 8)).toEqual(["a", "circle", "red"]);
    expect(v.tokens.slice(8)).toEqual(["!", ",", ".", "blue", "green", "left", "of", "square", "triangles", "two"]);
    expect(tok.special).toEqual({ pad: 0, bos: 1, eos: 2, unk: 3, image: 4 });
    expect(tok.vocabSize).toBe(18);
  });

  test("encode lowercases, splits punctuation, maps unknown words to <unk>, wraps in bos/eos", () => {
    const tok = WordTokenizer.fromCorpus(corpus);
    const id = (w: string) => tok.tokenToId(w)!;
    const e = tok.encode("A RED hexagon, left.");
    expect(e.ids).toEqual([1, id("a"), id("red"), 3, id(","), id("left"), id("."), 2]);
    expect(e.truncated).toBe(false);
    expect(e.fullLength).toBe(8);
    expect(tok.encode("red circle", { addSpecialTokens: false }).ids).toEqual([id("red"), id("circle")]);
    // special tokens written in the text survive splitting
    expect(tok.encode("<image> a circle", { addSpecialTokens: false }).ids).toEqual([4, id("a"), id("circle")]);
  });

  test("decode skips specials (keeps <unk>) and attaches punctuation", () => {
    const tok = WordTokenizer.fromCorpus(corpus);
    expect(tok.decode(tok.encode("A red hexagon, left of two circle!").ids)).toBe("a red <unk>, left of two circle!");
    expect(tok.decode(tok.encode("a circle").ids, { skipSpecialTokens: false })).toBe("<bos> a circle <eos>");
    expect(() => tok.decode([99])).toThrow(TokenizerError);
  });

  test("over-long input: truncated keeping bos/eos, counted, listener told", () => {
    const tok = WordTokenizer.fromCorpus(corpus, { modelMaxLength: 6 });
    const seen: number[] = [];
    tok.onTruncate((i) => seen.push(i.fullLength));
    const long = "a red circle left of a blue square";
    const e = tok.encode(long);
    expect(e.ids.length).toBe(6);
    expect(e.ids[0]).toBe(tok.special.bos);
    expect(e.ids[5]).toBe(tok.special.eos);
    expect(tok.decode(e.ids)).toBe("a red circle left");
    expect(e.truncated).toBe(true);
    expect(e.fullLength).toBe(10);
    expect(tok.truncations).toBe(1);
    tok.encode(long, { maxLength: 4 });
    tok.encode("a circle", { maxLength: 4 }); // fits exactly: not counted
    expect(tok.truncations).toBe(2);
    expect(seen).toEqual([10, 10]);
    expect(() => tok.encode(long, { maxLength: 1 })).toThrow(/cannot hold/);
  });

  test("default truncation warning is one console line, then counted only", () => {
    const tok = WordTokenizer.fromCorpus(corpus);
    const orig = console.warn;
    const lines: string[] = [];
    console.warn = (m: string) => lines.push(m);
    try {
      tok.encode("a red circle", { maxLength: 3 });
      tok.encode("a red circle", { maxLength: 3 });
    } finally {
      console.warn = orig;
    }
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("truncated to 3");
    expect(tok.truncations).toBe(2);
  });

  test("vocab file round trip and validation errors name the file", () => {
    const tok = WordTokenizer.fromCorpus(corpus, { modelMaxLength: 32 });
    const again = WordTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(again.encode("a blue triangles").ids).toEqual(tok.encode("a blue triangles").ids);
    expect(again.modelMaxLength).toBe(32);
    const bad = tok.toJSON();
    bad.tokens.push("a");
    expect(() => WordTokenizer.fromJSON(bad, "x/vocab.json")).toThrow(/x\/vocab.json: tokens\[18\] 'a' is duplicated/);
    const noUnk = tok.toJSON();
    noUnk.tokens = noUnk.tokens.filter((t) => t !== "<unk>");
    expect(() => WordTokenizer.fromJSON(noUnk)).toThrow(/'<unk>' \(unk\) is not in tokens/);
    expect(() => WordTokenizer.fromJSON({ format: "other" })).toThrow(/format must be/);
  });

  test("fromWords keeps the given order after the specials and rejects duplicates", () => {
    const tok = WordTokenizer.fromWords(["red", "a", "circle", "."]);
    expect(tok.toJSON().tokens).toEqual(["<pad>", "<bos>", "<eos>", "<unk>", "<image>", "red", "a", "circle", "."]);
    expect(tok.encode("A red circle.", { addSpecialTokens: false }).ids).toEqual([6, 5, 7, 8]);
    expect(() => WordTokenizer.fromWords(["a", "a"])).toThrow(/word list: tokens\[6\] 'a' is duplicated/);
    expect(() => WordTokenizer.fromWords(["<eos>"])).toThrow(/duplicated/);
  });
});
