/**
 * The parsers clipflow exposes to untrusted bytes, as fuzz targets (harness.ts): pipeline YAML,
 * `--set` overrides, safetensors, ONNX model load (in a model-host worker, as the scheduler does),
 * Arrow IPC file and stream, Parquet, LLaVA JSONL and image bytes. Seeds are small valid inputs
 * built here, so a run needs nothing but the repository.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { buildImages } from "../../src/arrow/build.ts";
import { imagesSchema } from "../../src/arrow/schemas.ts";
import { parseSafetensors, serializeSafetensors, tensorToFloat32 } from "../../src/graph/safetensors.ts";
import { ArrowIpcWriter, readArrowImages, readArrowStream } from "../../src/io/arrow-ipc.ts";
import { readLlavaJsonl } from "../../src/io/jsonl.ts";
import { ParquetBatchWriter, plainColumns, plainParquetSchema, readParquetImages } from "../../src/io/parquet.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { parsePipeline } from "../../src/pipeline/loader.ts";
import { WorkerHost } from "../../src/scheduler/model-host.ts";
import { mlpModel } from "../scheduler/fixtures/onnx-models.ts";
import { boundedBadRows, type FuzzTarget } from "./harness.ts";

const root = join(import.meta.dir, "..", "..");
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A scratch folder for targets whose parser reads a file; removed by `closeTargets`. */
let scratch: string | undefined;
function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), "clipflow-fuzz-"));
  return scratch;
}
let host: WorkerHost | undefined;

/** Removes the scratch folder and stops the ONNX target's worker. */
export async function closeTargets(): Promise<void> {
  await host?.terminate();
  host = undefined;
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

async function pngs(): Promise<Uint8Array[]> {
  const img = (w: number, h: number, c: [number, number, number]) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: c[0], g: c[1], b: c[2] } } });
  return [
    new Uint8Array(await img(8, 8, [200, 10, 10]).png().toBuffer()),
    new Uint8Array(await img(12, 6, [10, 200, 10]).jpeg().toBuffer()),
    new Uint8Array(await img(5, 9, [10, 10, 200]).webp().toBuffer()),
  ];
}

async function imageRows() {
  const [a, b] = await pngs();
  return [
    { id: "r0", image: a!, prompt: "Describe the image.", reference: "a red square." },
    { id: "r1", image: b!, prompt: "What is in the picture?", reference: null },
  ];
}

/** Reads a whole async generator of batches, counting rows (errors propagate). */
async function drain(gen: AsyncIterable<{ numRows: number }>): Promise<number> {
  let n = 0;
  for await (const b of gen) n += b.numRows;
  return n;
}


export const targets: FuzzTarget[] = [
  {
    name: "pipeline-yaml",
    where: "fuzz.yaml",
    async seeds() {
      const dir = join(root, "pipelines");
      return readdirSync(dir).filter((f) => f.endsWith(".yaml")).map((f) => new Uint8Array(readFileSync(join(dir, f))));
    },
    dictionary: ["&a ", "*a", "<<: *a\n", "!!binary ", "!!str ", "- ", ": ", "{", "}", "[", "]", "\n  ", "1e999", "-1", "null", "~", '"', "'", "#", "stages:\n", "model: ", "---\n", "...\n", "? ", "|\n", ">-\n", "\t", "\u0000", "9223372036854775807", "__proto__: ", "constructor: ", "count: 0", "variants:\n  - "],
    maxBytes: 32 * 1024,
    async run(input, where) {
      parsePipeline(dec(input), where, { cwd: root, checkFiles: false });
    },
  },
  {
    name: "set-overrides",
    where: "--set",
    async seeds() {
      return [
        "stages.source.count=16", "generate.prompts=[Describe the image.]", "stages[2].samples=4", "models.clip.path=models/shapes-clip",
        "dpoTrain.loss={sigmoid: 1, ipo: 0.5}", "eval=null", "flow.maxInFlight=8", "scheduler.device=cuda:0",
      ].map(enc);
    },
    dictionary: ["=", ".", "[", "]", "[-1]", "[99999999999]", "__proto__", "constructor", "prototype", "{", "}", ":", ",", "&a", "*a", "null", "1e999", "stages", "models", "\n", "'", '"'],
    maxBytes: 4096,
    async run(input) {
      const text = readFileSync(join(root, "pipelines", "clip-dpo.yaml"), "utf8");
      // split on NUL so one input can carry several overrides
      parsePipeline(text, "pipelines/clip-dpo.yaml", { cwd: root, checkFiles: false, overrides: dec(input).split("\u0000") });
    },
    // a rejected override is reported with the override text or the key it addressed, not "--set"
    accept: (e) => e.name === "PipelineError",
  },
  {
    name: "safetensors",
    where: "fuzz.safetensors",
    async seeds() {
      return [
        serializeSafetensors({ w: { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }, b: { shape: [3], data: Float32Array.of(0.5, -1, 2) } }, { format: "pt", ids: '["a","b"]' }),
        serializeSafetensors({ ids: { shape: [2, 2], data: BigInt64Array.of(1n, 2n, 3n, 4n) }, m: { shape: [4], data: Uint8Array.of(1, 0, 1, 1) }, d: { shape: [1, 1], data: Float64Array.of(3.5) } }),
        serializeSafetensors({}),
      ];
    },
    dictionary: ['"dtype":"F32"', '"dtype":"F16"', '"dtype":"BF16"', '"shape":[]', '"shape":[99999999,99999999]', '"data_offsets":[0,4]', '"data_offsets":[4,0]', '"__metadata__":', "{", "}", ",", '"', "-1"],
    async run(input, where) {
      const f = parseSafetensors(input, where);
      for (const name of f.tensors.keys()) if (["F32", "F16", "BF16", "F64"].includes(f.tensors.get(name)!.dtype)) tensorToFloat32(f, name);
    },
  },
  {
    name: "onnx-load",
    where: "load model 'fuzz'",
    async seeds() {
      return [
        mlpModel({ inDim: 4, hidden: 8, outDim: 2, seed: 1 }),
        new Uint8Array(readFileSync(join(root, "models", "shapes-lvlm", "onnx", "decode.onnx"))),
      ];
    },
    maxBytes: 64 * 1024,
    async run(input) {
      host ??= new WorkerHost("cpu", "worker(fuzz)");
      await host.load("fuzz", input, { intraOpThreads: 1 });
    },
  },
  {
    name: "arrow-stream",
    where: "fuzz.arrows",
    async seeds() {
      const p = join(scratchDir(), "seed.arrows");
      const w = new ArrowIpcWriter({ path: p, format: "stream", schema: imagesSchema });
      w.write(buildImages(await imageRows()));
      w.commit();
      return [new Uint8Array(readFileSync(p))];
    },
    async run(input, where) {
      async function* chunks() {
        for (let i = 0; i < input.length; i += 512) yield input.subarray(i, i + 512);
      }
      const bad = boundedBadRows();
      await drain(readArrowStream(chunks(), { name: where, onBadRow: bad.onBadRow }));
      bad.check();
    },
  },
  {
    name: "arrow-file",
    where: "fuzz.arrow",
    async seeds() {
      const p = join(scratchDir(), "seed.arrow");
      const w = new ArrowIpcWriter({ path: p, format: "file", schema: imagesSchema });
      w.write(buildImages(await imageRows()));
      w.commit();
      return [new Uint8Array(readFileSync(p))];
    },
    async run(input, where) {
      const p = join(scratchDir(), where);
      writeFileSync(p, input);
      const bad = boundedBadRows();
      await drain(readArrowImages(p, { onBadRow: bad.onBadRow }));
      bad.check();
    },
  },
  {
    name: "parquet",
    where: "fuzz.parquet",
    async seeds() {
      const p = join(scratchDir(), "seed.parquet");
      const w = new ParquetBatchWriter(p, plainParquetSchema(imagesSchema), plainColumns);
      w.write(buildImages(await imageRows()));
      w.commit();
      return [new Uint8Array(readFileSync(p))];
    },
    async run(input, where) {
      const p = join(scratchDir(), where);
      writeFileSync(p, input);
      const bad = boundedBadRows();
      await drain(readParquetImages(p, { onBadRow: bad.onBadRow }));
      bad.check();
    },
  },
  {
    name: "llava-jsonl",
    where: "fuzz.jsonl",
    async seeds() {
      const d = join(scratchDir(), "images");
      mkdirSync(d, { recursive: true });
      const [a] = await pngs();
      writeFileSync(join(d, "a.png"), a!);
      const line = (id: unknown, image: string, q: string) => JSON.stringify({ id, image, conversations: [{ from: "human", value: `<image>\n${q}` }, { from: "gpt", value: "A red square." }] });
      return [enc(`${line("x1", "a.png", "Describe the image.")}\n${line(7, "a.png", "What is it?")}\n`), enc(`${line("x2", "a.png", "Where?")}\n\n`)];
    },
    dictionary: ['"id":', '"image":', '"conversations":', '"from":"human"', '"value":', "\n", "{", "}", "[", "]", "../", "/etc/passwd", "\\u0000", "null", "1e999", '"'],
    async run(input, where) {
      const p = join(scratchDir(), where);
      writeFileSync(p, input);
      const bad = boundedBadRows();
      await drain(readLlavaJsonl(p, join(scratchDir(), "images"), { onBadRow: bad.onBadRow }));
      bad.check();
    },
  },
  {
    name: "image-bytes",
    where: "image",
    async seeds() {
      return pngs();
    },
    async run(input) {
      await preprocessImage(input, clipImageConfig(16));
    },
    // ImageDecodeError says what is wrong with the image; the row id is added by the caller
    accept: (e) => e.name === "ImageDecodeError",
  },
];
