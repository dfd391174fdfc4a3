import { describe, expect, test } from "bun:test";
import { HfTokenizer } from "../../src/models/hf-tokenizer.ts";
import { tinyClipBpe } from "./tokenizer-fixtures.ts";

describe("HfTokenizer (tiny CLIP-style BPE tokenizer.json)", () => {
  const load = () => {
    const { tokenizerJson, tokenizerConfig } = tinyClipBpe();
    return { tok: HfTokenizer.fromJSON(tokenizerJson, tokenizerConfig), v: tokenizerJson.model as { vocab: Record<string, number> } };
  };

  test("special ids come from tokenizer_config / post-processor; model max length 77", () => {
    const { tok, v } = load();
    expect(tok.special).toEqual({ bos: v.vocab["<|startoftext|>"]!, eos: v.vocab["<|endoftext|>"]!, pad: v.vocab["<|endoftext|>"]!, unk: v.vocab["<|endoftext|>"]! });
    expect(tok.vocabSize).toBe(62);
    expect(tok.modelMaxLength).toBe(77);
    // without tokenizer_config.json the RobertaProcessing wrapper still names bos/eos
    const { tokenizerJson } = tinyClipBpe();
    const bare = HfTokenizer.fromJSON(tokenizerJson);
    expect(bare.special.bos).toBe(v.vocab["<|startoftext|>"]!);
    expect(bare.special.eos).toBe(v.vocab["<|endoftext|>"]!);
    expect(bare.modelMaxLength).toBeUndefined();
  });

  test("BPE merges applied by the library: lowercase, whole-word merges, partial merges", () => {
    const { tok, v } = load();
    const ids = (toks: string[]) => toks.map((t) => v.vocab[t]!);
    expect(tok.encode("A red  Circle.").ids).toEqual(ids(["<|startoftext|>", "a</w>", "red</w>", "circle</w>", ".</w>", "<|endoftext|>"]));
    // "reed": r+e merge, but "re d</w>" cannot apply across the second e
    expect(tok.encode("reed", { addSpecialTokens: false }).ids).toEqual(ids(["re", "e", "d</w>"]));
    expect(tok.decode(tok.encode("A red circle.").ids)).toBe("a red circle.");
    expect(tok.decode(tok.encode("a reed").ids)).toBe("a reed");
  });

  test("the real CLIP pre-tokenizer (Split regex + ByteLevel) and ByteLevel decoder give the same ids", () => {
    const { tokenizerJson, tokenizerConfig } = tinyClipBpe({ realPipeline: true });
    const real = HfTokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    const { tok } = load();
    for (const s of ["A red  Circle.", "a reed", "red circles"]) {
      expect(real.encode(s).ids).toEqual(tok.encode(s).ids);
      expect(real.decode(real.encode(s).ids)).toBe(tok.decode(tok.encode(s).ids));
    }
  });

  test("over-long input keeps <|startoftext|> and <|endoftext|>, truncation counted", () => {
    const { tok, v } = load();
    const got: number[] = [];
    tok.onTruncate((i) => got.push(i.count));
    const e = tok.encode("a red circle a red circle", { maxLength: 5 });
    expect(e.ids).toEqual([v.vocab["<|startoftext|>"]!, v.vocab["a</w>"]!, v.vocab["red</w>"]!, v.vocab["circle</w>"]!, v.vocab["<|endoftext|>"]!]);
    expect(e.truncated).toBe(true);
    expect(e.fullLength).toBe(8);
    expect(tok.truncations).toBe(1);
    // the model max length (77) applies when no maxLength is given
    const long = Array.from({ length: 100 }, () => "red").join(" ");
    const e2 = tok.encode(long);
    expect(e2.ids.length).toBe(77);
    expect(e2.ids[76]).toBe(tok.special.eos);
    expect(tok.truncations).toBe(2);
    expect(got).toEqual([1, 2]);
  });

  test("bad files give one clear error", () => {
    expect(() => HfTokenizer.fromJSON(null)).toThrow(/tokenizer.json: expected a JSON object/);
    expect(() => HfTokenizer.fromJSON({ version: "1.0" })).toThrow(/missing 'model'/);
    const { tokenizerJson } = tinyClipBpe();
    expect(() => HfTokenizer.fromJSON(tokenizerJson, { eos_token: "<nope>" })).toThrow(/eos token '<nope>' is not in the vocabulary/);
    const { tok } = load();
    expect(() => tok.decode([1000])).toThrow(/outside vocabulary/);
  });
});
