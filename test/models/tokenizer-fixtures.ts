/**
 * A tiny CLIP-style BPE tokenizer.json written by hand for the tests: same component types as
 * openai/clip-vit-base-patch32 (NFC + whitespace Replace + Lowercase normalizer, whitespace split,
 * BPE with "</w>" end-of-word suffix, RobertaProcessing wrapper, BPEDecoder), but a 60-token vocab.
 */
export function tinyClipBpe(opts: { realPipeline?: boolean } = {}): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  let next = 0;
  const add = (t: string): void => {
    if (!(t in vocab)) vocab[t] = next++;
  };
  for (const c of "abcdefghijklmnopqrstuvwxyz") add(c);
  for (const c of "abcdefghijklmnopqrstuvwxyz") add(c + "</w>");
  add(".</w>");
  const merges = ["r e", "re d</w>", "c i", "ci r", "cir c", "circ l", "circl e</w>"];
  for (const m of merges) add(m.replace(" ", ""));
  add("<|startoftext|>");
  add("<|endoftext|>");
  const bos = vocab["<|startoftext|>"]!, eos = vocab["<|endoftext|>"]!;
  return {
    tokenizerJson: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [
        { id: bos, content: "<|startoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
        { id: eos, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
      ],
      normalizer: {
        type: "Sequence",
        normalizers: [{ type: "NFC" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, { type: "Lowercase" }],
      },
      // realPipeline: the pre-tokenizer and decoder of openai/clip-vit-base-patch32's tokenizer.json
      pre_tokenizer: opts.realPipeline
        ? {
            type: "Sequence",
            pretokenizers: [
              { type: "Split", pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: "Removed", invert: true },
              { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
            ],
          }
        : { type: "Split", pattern: { Regex: "[a-z]+|[^\\sa-z]" }, behavior: "Removed", invert: true },
      post_processor: { type: "RobertaProcessing", sep: ["<|endoftext|>", eos], cls: ["<|startoftext|>", bos], trim_offsets: false, add_prefix_space: false },
      decoder: opts.realPipeline ? { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true } : { type: "BPEDecoder", suffix: "</w>" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: "<|endoftext|>",
        continuing_subword_prefix: "",
        end_of_word_suffix: "</w>",
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    },
    tokenizerConfig: {
      bos_token: "<|startoftext|>",
      eos_token: "<|endoftext|>",
      pad_token: "<|endoftext|>",
      unk_token: { content: "<|endoftext|>", special: true },
      model_max_length: 77,
    },
  };
}
