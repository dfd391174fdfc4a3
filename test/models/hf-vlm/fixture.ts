/**
 * Tiny random VLMs in the Hugging Face image-text-to-text ONNX layout, written by clipflow's own
 * exporter (src/models/hf-vlm/export.ts, graph builder) into a temp folder, with a small BPE
 * `tokenizer.json` (special tokens <pad> <s> </s> <image>, lowercase letters, a few merges) and
 * a chat template that puts the image inside the user turn (not at position 0), so the merge at
 * the image-token positions is really exercised. Deterministic: same seed, same bytes.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HfTokenizer } from "../../../src/models/hf-tokenizer.ts";
import { lvlmPresets } from "../../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../../src/models/lvlm-model.ts";
import { exportHfVlm } from "../../../src/models/hf-vlm/export.ts";

/** A small BPE tokenizer.json + tokenizer_config.json (left padding, as batch generation wants). */
export function tinyVlmBpe(): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  let next = 0;
  const add = (t: string): void => {
    if (!(t in vocab)) vocab[t] = next++;
  };
  const specials = ["<pad>", "<s>", "</s>", "<image>"];
  specials.forEach(add);
  for (const c of "abcdefghijklmnopqrstuvwxyz") add(c);
  for (const c of "abcdefghijklmnopqrstuvwxyz") add(c + "</w>");
  for (const c of ".:,?") add(c + "</w>");
  const merges = ["r e", "re d</w>", "t h", "th e</w>", "a n", "an d</w>", "u s", "us e", "use r", "s t", "st a", "sta r", "e r</w>", "i m", "im a", "ima g", "imag e</w>"];
  for (const m of merges) add(m.replace(" ", ""));
  const added = specials.map((content) => ({ id: vocab[content]!, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    tokenizerJson: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Lowercase" }] },
      pre_tokenizer: { type: "Split", pattern: { Regex: "[a-z]+|[^\\sa-z]" }, behavior: "Removed", invert: true },
      post_processor: null,
      decoder: { type: "BPEDecoder", suffix: "</w>" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
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
      bos_token: "<s>",
      eos_token: "</s>",
      pad_token: "<pad>",
      padding_side: "left",
      model_max_length: 256,
      tokenizer_class: "PreTrainedTokenizerFast",
    },
  };
}

/** A LLaVA-style chat template with role words: the image sits after "user:". */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}user: " +
  "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}" +
  "{% else %} assistant: {% for c in message['content'] %}{{ c['text'] }}{% endfor %}{{ eos_token }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %} assistant:{% endif %}";

export interface TinyVlm {
  dir: string;
  lvlm: LvlmModel;
  tok: HfTokenizer;
}

/**
 * Export a tiny random LVLM (1 vision layer, 4 image tokens, LM width 32 × 2 layers) into a new
 * temp folder. `eosBias` raises the eos logit so samples stop after varied lengths.
 */
export async function writeTinyVlm(opts: { seed?: number; eosBias?: number; chatTemplate?: string; maxPositions?: number; shape?: "tiny" | "shapes-policy" } = {}): Promise<TinyVlm> {
  const files = tinyVlmBpe();
  const tok = HfTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
  const ids = { pad: 0, bos: 1, eos: 2 };
  // "shapes-policy": the shipped policy's shape (64 image tokens, LM 128 × 4) for the bench
  const base = opts.shape === "shapes-policy" ? lvlmPresets.shapesPolicy(tok.vocabSize, ids) : lvlmPresets.tiny(tok.vocabSize, ids);
  const cfg = { ...base, lm: { ...base.lm, layers: opts.shape === "shapes-policy" ? base.lm.layers : 2, maxPositions: opts.maxPositions ?? 96 } };
  const lvlm = LvlmModel.create(cfg, tok, opts.seed ?? 5);
  // random weights are near-uniform over the vocabulary and blind to the prompt: sharpen the
  // unembedding (greedy choices far from ties: the tests compare argmaxes across
  // implementations) and the blocks/projector (answers depend on the image and the prompt)
  for (const name of lvlm.store.names()) {
    const f = name === "lm.head.w" || name === "lm.tok" ? 40 : (name.startsWith("lm.blocks") || name.startsWith("projector")) && name.endsWith(".w") ? 3 : 1;
    const p = lvlm.store.require(name).data;
    for (let i = 0; i < p.length; i++) p[i] = p[i]! * f;
  }
  if (opts.eosBias) {
    const V = lvlm.cfg.lm.vocabSize;
    lvlm.store.require("lm.ln_f.b").data[0] = 1;
    lvlm.store.require("lm.head.w").data[0 * V + lvlm.cfg.eosTokenId] = opts.eosBias;
  }
  const dir = mkdtempSync(join(tmpdir(), "clipflow-hfvlm-"));
  await exportHfVlm(lvlm, dir, { chatTemplate: opts.chatTemplate ?? CHAT_TEMPLATE });
  return { dir, lvlm, tok };
}
