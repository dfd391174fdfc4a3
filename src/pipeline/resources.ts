/**
 * What the stages of one pipeline run share: the process's one inference `Scheduler`, the
 * models of the `models` section (each loaded once, on first use), and named shared objects
 * (e.g. the pixel cache the decode stage fills and the trainer reads).
 *
 * Model folders: `{ builtin: shapes-clip }` is `models/shapes-clip/` of the clipflow checkout;
 * `{ path, format }` is the folder given (already absolute after loading the pipeline). CLIPs are
 * read in the Hugging Face ONNX layout (clipflow exports use it too) and run on the scheduler;
 * LVLMs are clipflow policy folders (src/models/lvlm-io.ts); a `format: hf-onnx-vlm` policy (a
 * Hugging Face image-text-to-text export, src/models/hf-vlm) serves `generate`, `refLogps` and
 * the evaluation (through the scheduler), but is not trained (`dpoTrain` refuses it).
 *
 * @example
 * const r = new PipelineResources(pipeline);
 * const clip = await r.clip("clip");          // ScheduledClip on r.scheduler
 * const policy = await r.lvlm("policy");      // LvlmModel, shared by every stage asking for it
 * await r.close();
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ScheduledClip } from "../../operators/scheduled-clip.ts";
import { loadLvlm } from "../models/lvlm-io.ts";
import type { LvlmModel } from "../models/lvlm-model.ts";
import { Decoder } from "../scheduler/decoder.ts";
import { loadHfVlm } from "../models/hf-vlm/policy.ts";
import type { PolicyModel } from "../models/lvlm-policy.ts";
import { scheduledEvalPolicy, type EvalPolicy } from "./eval.ts";
import { Scheduler, type BatchOptions } from "../scheduler/scheduler.ts";
import type { ResolvedPipeline } from "./loader.ts";
import { errorMessage, ModelFileError } from "../util/errors.ts";
import { HF_CLIP_FILES } from "../models/hf-clip.ts";
import { builtinModels, type ModelConfig, type ModelKind } from "./schema.ts";

/** The folder holding the built-in models (`models/` at the repository root). */
export const BUILTIN_MODELS_DIR = resolve(import.meta.dir, "../../models");

/**
 * A model that cannot be opened (missing folder or file, corrupt file, wrong kind or format,
 * image size that does not match the other models): one line naming the `models` entry and
 * the file. Raised at set-up, before any row is generated.
 */
export class ModelLoadError extends ModelFileError {
  override name = "ModelLoadError";
  constructor(detail: string, opts: { code?: string; cause?: unknown } = {}) {
    super(detail, { code: opts.code ?? "model load", cause: opts.cause });
  }
}

export interface ResourcesOptions {
  /** Use this scheduler (tests); default: a new one on `pipeline.scheduler.device`. */
  scheduler?: Scheduler;
  /** Folder of the builtin models (default BUILTIN_MODELS_DIR). */
  builtinDir?: string;
}

export class PipelineResources {
  readonly scheduler: Scheduler;
  private readonly ownsScheduler: boolean;
  private readonly builtinDir: string;
  private readonly clips = new Map<string, Promise<ScheduledClip>>();
  private readonly lvlms = new Map<string, Promise<LvlmModel>>();
  private readonly hfPolicies = new Map<string, Promise<PolicyModel>>();
  private readonly decoders = new Map<string, Promise<Decoder>>();
  private readonly evalPolicies = new Map<string, Promise<EvalPolicy>>();
  private readonly sharedObjects = new Map<string, unknown>();
  private readonly closers: (() => void | Promise<void>)[] = [];

  constructor(
    readonly pipeline: ResolvedPipeline,
    opts: ResourcesOptions = {},
  ) {
    this.ownsScheduler = opts.scheduler === undefined;
    this.scheduler = opts.scheduler ?? new Scheduler({ devices: [pipeline.scheduler.device as "cpu"] });
    this.builtinDir = opts.builtinDir ?? BUILTIN_MODELS_DIR;
  }

  /** The `models` entry `name` (the loader checked every reference; this guards direct use). */
  model(name: string): ModelConfig {
    const m = this.pipeline.models[name];
    if (!m) throw new ModelLoadError(`models.${name}: not defined in ${this.pipeline.file}`);
    return m;
  }

  /** Kind of a models entry: known for builtins, else from how it is used (`undefined`). */
  kindOf(name: string): ModelKind | undefined {
    const m = this.model(name);
    return "builtin" in m ? builtinModels[m.builtin] : undefined;
  }

  /** Absolute folder of a models entry; builtins must have been shipped in `models/`. */
  modelDir(name: string): string {
    const m = this.model(name);
    if ("path" in m) return m.path;
    const dir = join(this.builtinDir, m.builtin);
    if (!existsSync(join(dir, "config.json")))
      throw new ModelLoadError(`models.${name}: builtin ${m.builtin} is not in ${dir} (train it with pipelines/${m.builtin === "shapes-clip" ? "pretrain-clip" : "sft-policy"}.yaml)`);
    return dir;
  }

  /** Scheduler batching options from the pipeline's `scheduler` section. */
  batchOptions(extra: BatchOptions = {}): BatchOptions {
    const s = this.pipeline.scheduler;
    return { maxBatch: s.maxBatch, maxDelayMs: s.maxDelayMs, replicas: s.workers, intraOpThreads: s.threads, ...extra };
  }

  /** The CLIP of entry `name`, registered on the scheduler as `<name>.image` / `<name>.text` (once). */
  clip(name: string): Promise<ScheduledClip> {
    let p = this.clips.get(name);
    if (!p) {
      const m = this.model(name);
      p = Promise.resolve().then(() => {
        if (this.kindOf(name) === "lvlm") throw new ModelLoadError(`models.${name}: is an LVLM, a CLIP is needed here`);
        return ScheduledClip.fromDir(this.scheduler, this.modelDir(name), name, this.batchOptions()).catch((e: unknown) => {
          throw new ModelLoadError(`models.${name} (${"path" in m ? m.path : m.builtin}): ${errorMessage(e)}`, { cause: e });
        });
      });
      this.clips.set(name, p);
    }
    return p;
  }

  /**
   * The policy of entry `name`, loaded once and shared: generation, reference log-probs and the
   * trainer see the same object (the trainer writes its trained weights into it at export).
   */
  lvlm(name: string): Promise<LvlmModel> {
    let p = this.lvlms.get(name);
    if (!p) {
      p = this.freshLvlm(name);
      this.lvlms.set(name, p);
    }
    return p;
  }

  /** A separate copy of the policy of entry `name` as stored on disk (e.g. the untrained start, for evaluation). */
  async freshLvlm(name: string): Promise<LvlmModel> {
    const m = this.model(name);
    if (this.kindOf(name) === "clip") throw new ModelLoadError(`models.${name}: is a CLIP, a policy (LVLM) is needed here`);
    if ("format" in m && m.format === "hf-onnx") throw new ModelLoadError(`models.${name}: hf-onnx policies are not supported; use a clipflow policy folder (format: clipflow)`);
    if ("format" in m && m.format === "hf-onnx-vlm") throw new ModelLoadError(`models.${name}: an hf-onnx-vlm policy cannot be trained here (training an imported decoder is not supported; it generates, scores refLogps and is evaluated as it is); a trainer needs a clipflow policy folder (format: clipflow)`);
    const dir = this.modelDir(name);
    try {
      return await loadLvlm(dir, { threads: this.pipeline.scheduler.threads });
    } catch (e) {
      throw new ModelLoadError(`models.${name} (${dir}): ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * The policy of entry `name` as the evaluation runs it, as stored on disk (the untrained
   * start): a clipflow policy folder is a fresh in-process copy ({@link freshLvlm}); an
   * `hf-onnx-vlm` entry is driven through the scheduler by a decoder of its own,
   * `<name>.eval`, with scoring for the probes (created once, loaded before it is returned).
   * @example
   * const start = await resources.evalPolicy("policy"); // LvlmModel | ScheduledEvalPolicy
   */
  evalPolicy(name: string): Promise<EvalPolicy> {
    const m = this.model(name);
    if (!("format" in m && m.format === "hf-onnx-vlm")) return this.freshLvlm(name);
    let p = this.evalPolicies.get(name);
    if (!p) {
      const s = this.pipeline.scheduler;
      p = (this.policy(name) as Promise<PolicyModel>).then(async (policy) => {
        if (!("preprocess" in policy && "tokenizer" in policy)) throw new ModelLoadError(`models.${name} (${m.path}): the imported policy has no image preprocessing or tokenizer to evaluate with`);
        const ev = scheduledEvalPolicy(this.scheduler, `${name}.eval`, policy as Parameters<typeof scheduledEvalPolicy>[2], {
          maxBatch: s.maxBatch, maxTokensInFlight: s.maxTokensInFlight, replicas: s.workers, intraOpThreads: s.threads, device: s.device as "cpu",
        });
        await ev.decoder.ready.catch((e: unknown) => {
          throw new ModelLoadError(`models.${name}: the policy's evaluation decoder cannot be loaded from ${m.path}: ${errorMessage(e)}`, { cause: e });
        });
        return ev;
      });
      this.evalPolicies.set(name, p);
    }
    return p;
  }

  /**
   * A policy to score with (refLogps): an `hf-onnx-vlm` entry loads as an imported `PolicyModel`
   * (once, cached); any other entry is the shared built-in LVLM of `lvlm(name)`.
   */
  policy(name: string): Promise<LvlmModel | PolicyModel> {
    const m = this.model(name);
    if (!("format" in m && m.format === "hf-onnx-vlm")) return this.lvlm(name);
    let p = this.hfPolicies.get(name);
    if (!p) {
      p = loadHfVlm(m.path).catch((e: unknown) => {
        throw new ModelLoadError(`models.${name} (${m.path}): ${errorMessage(e)}`, { cause: e });
      });
      this.hfPolicies.set(name, p);
    }
    return p;
  }

  /**
   * The continuous-batching decoder of policy `name` on the scheduler (created once; its graphs
   * hold the policy's weights as they are at creation, i.e. the starting policy).
   */
  decoder(name: string): Promise<Decoder> {
    let d = this.decoders.get(name);
    if (!d) {
      const s = this.pipeline.scheduler;
      const o = { maxBatch: s.maxBatch, maxTokensInFlight: s.maxTokensInFlight, replicas: s.workers, intraOpThreads: s.threads };
      const m = this.model(name);
      d =
        "format" in m && m.format === "hf-onnx-vlm"
          ? loadHfVlm(m.path).then(
              (policy) => new Decoder(this.scheduler, name, policy, { ...o, device: this.pipeline.scheduler.device as "cpu" }),
              (e: unknown) => {
                throw new ModelLoadError(`models.${name} (${m.path}): ${errorMessage(e)}`, { cause: e });
              },
            )
          : this.lvlm(name).then((lvlm) => this.scheduler.decoder(name, lvlm, o));
      this.decoders.set(name, d);
    }
    return d;
  }

  /**
   * Waits until every model the stages asked for has loaded and answered one tiny call, so a
   * missing, empty or corrupt model file fails here — at set-up, before any row is generated —
   * as one line naming the `models` entry and the file; then checks that every model reads the
   * same image size (the decoded pixels are shared by the CLIP towers and the policy).
   *
   * @example
   * await resources.verify(); // after the stage factories ran; throws ModelLoadError
   */
  async verify(): Promise<void> {
    // Sizes first (from the configs, nothing run): a mismatch is named as such, not as a tower
    // that fails on pixels of the wrong size.
    const sizes: { what: string; size: number }[] = [];
    for (const [name, p] of this.clips) sizes.push({ what: `models.${name} (CLIP)`, size: (await p).imageSize });
    for (const [name, p] of this.lvlms) sizes.push({ what: `models.${name} (policy)`, size: (await p).cfg.vision.imageSize });
    for (const [name, d] of this.decoders) if (!this.lvlms.has(name)) sizes.push({ what: `models.${name} (policy)`, size: (await d).model.imageSize });
    const first = sizes[0];
    const other = sizes.find((x) => x.size !== first?.size);
    if (first && other)
      throw new ModelLoadError(`${first.what} reads ${first.size}px images but ${other.what} reads ${other.size}px; the models of one pipeline share the decoded pixels, so their image sizes must match`, { code: "image size mismatch" });

    for (const [name, p] of this.clips) {
      const clip = await p;
      const dir = this.modelDir(name);
      const s = clip.imageSize;
      // [1, 3, S, S] of zeros: the vision tower must load and run.
      await clip.embedImages(new Float32Array(3 * s * s), 1).catch((e: unknown) => {
        throw new ModelLoadError(`models.${name}: ${join(dir, HF_CLIP_FILES.vision)} cannot be loaded: ${errorMessage(e)}`, { cause: e });
      });
      await clip.embedTexts(["a"]).catch((e: unknown) => {
        throw new ModelLoadError(`models.${name}: ${join(dir, HF_CLIP_FILES.text)} cannot be loaded: ${errorMessage(e)}`, { cause: e });
      });
    }
    for (const [name, d] of this.decoders) {
      await (await d).ready.catch((e: unknown) => {
        throw new ModelLoadError(`models.${name}: the policy's decoder cannot be loaded from ${this.modelDir(name)}: ${errorMessage(e)}`, { cause: e });
      });
    }
  }

  /** A named object shared by the stages of this run, made on first request. */
  shared<T>(key: string, make: () => T): T {
    if (!this.sharedObjects.has(key)) this.sharedObjects.set(key, make());
    return this.sharedObjects.get(key) as T;
  }

  /** Runs `fn` when the resources close (stages release workers, files). */
  onClose(fn: () => void | Promise<void>): void {
    this.closers.push(fn);
  }

  /** Closes what the stages registered, then the scheduler (if this object created it). */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.closers.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    }
    if (this.ownsScheduler) await this.scheduler.close();
    if (errors.length > 0) throw errors[0];
  }
}
