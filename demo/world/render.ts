import sharp from "sharp";
import { BACKGROUND_RGB, colourRgb, type Colour, type ShapeKind } from "./attributes.ts";
import type { Scene, SceneObject } from "./scene.ts";
import { strokeTextPath } from "./stroke-font.ts";

/**
 * Scene → SVG → PNG (or raw RGB) through sharp. Shapes are plain filled SVG primitives on a grey
 * background; a painted word is drawn with the built-in stroke font, so renders do not depend on
 * installed fonts.
 *
 * @example
 * const png = await renderScene(sceneAt("sft", 0), { size: 64 }); // Uint8Array, PNG bytes
 *
 * @packageDocumentation
 */

export interface RenderOptions {
  /** Image side in pixels (square images). Default 64. */
  readonly size?: number;
}

const DEFAULT_SIZE = 64;

function rgb(c: Colour | readonly [number, number, number]): string {
  const [r, g, b] = typeof c === "string" ? colourRgb(c) : c;
  return `rgb(${r},${g},${b})`;
}

const f = (v: number): string => (Math.round(v * 1000) / 1000).toString();

function polygon(points: readonly (readonly [number, number])[], cx: number, cy: number, R: number, fill: string): string {
  return `<polygon points="${points.map(([x, y]) => `${f(cx + x * R)},${f(cy + y * R)}`).join(" ")}" fill="${fill}"/>`;
}

function regular(n: number, phase: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const a = phase + (2 * Math.PI * i) / n;
    return [Math.cos(a), Math.sin(a)];
  });
}

const STAR: [number, number][] = Array.from({ length: 10 }, (_, i) => {
  const a = -Math.PI / 2 + (Math.PI * i) / 5;
  const rr = i % 2 === 0 ? 1 : 0.45;
  return [rr * Math.cos(a), rr * Math.sin(a)];
});
const TRIANGLE = regular(3, -Math.PI / 2);
const HEXAGON = regular(6, 0);
const DIAMOND: [number, number][] = [[0, -1], [0.72, 0], [0, 1], [-0.72, 0]];
const A = 0.3, L = 0.92;
const CROSS: [number, number][] = [[-A, -L], [A, -L], [A, -A], [L, -A], [L, A], [A, A], [A, L], [-A, L], [-A, A], [-L, A], [-L, -A], [-A, -A]];

/** SVG markup of one object, in pixel coordinates of a `size`-px image. */
export function shapeSvg(o: SceneObject, size: number): string {
  const cx = o.x * size, cy = o.y * size, R = o.r * size;
  const fill = rgb(o.colour);
  const shapes: Record<ShapeKind, () => string> = {
    circle: () => `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(0.95 * R)}" fill="${fill}"/>`,
    square: () => `<rect x="${f(cx - 0.78 * R)}" y="${f(cy - 0.78 * R)}" width="${f(1.56 * R)}" height="${f(1.56 * R)}" fill="${fill}"/>`,
    triangle: () => polygon(TRIANGLE, cx, cy + 0.15 * R, 1.05 * R, fill),
    star: () => polygon(STAR, cx, cy + 0.05 * R, R, fill),
    heart: () =>
      `<g fill="${fill}"><circle cx="${f(cx - 0.45 * R)}" cy="${f(cy - 0.3 * R)}" r="${f(0.5 * R)}"/><circle cx="${f(cx + 0.45 * R)}" cy="${f(cy - 0.3 * R)}" r="${f(0.5 * R)}"/>` +
      `${polygon([[-0.9, -0.12], [0.9, -0.12], [0, 0.95]], cx, cy, R, fill)}</g>`,
    // Crescent: large outer arc through the left, inner arc (radius 1.102 R) back; the lit band spans x ∈ [-R, -0.25R] at the centre line.
    moon: () =>
      `<path d="M${f(cx + 0.3 * R)} ${f(cy - 0.954 * R)} A${f(R)} ${f(R)} 0 1 0 ${f(cx + 0.3 * R)} ${f(cy + 0.954 * R)} A${f(1.102 * R)} ${f(1.102 * R)} 0 0 1 ${f(cx + 0.3 * R)} ${f(cy - 0.954 * R)} Z" fill="${fill}"/>`,
    cross: () => polygon(CROSS, cx, cy, R, fill),
    diamond: () => polygon(DIAMOND, cx, cy, R, fill),
    hexagon: () => polygon(HEXAGON, cx, cy, 0.95 * R, fill),
  };
  return shapes[o.kind]();
}

/** The SVG document of a scene. */
export function sceneToSvg(scene: Pick<Scene, "objects" | "text">, opts: RenderOptions = {}): string {
  const size = checkSize(opts.size);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">`, `<rect width="${size}" height="${size}" fill="${rgb(BACKGROUND_RGB)}"/>`];
  for (const o of scene.objects) parts.push(shapeSvg(o, size));
  if (scene.text) {
    const t = scene.text;
    const h = t.height * size;
    parts.push(`<path d="${strokeTextPath(t.word, t.x * size, t.y * size, h)}" stroke="${rgb(t.colour)}" stroke-width="${f(Math.max(1, h / 7))}" fill="none" stroke-linecap="square"/>`);
  }
  parts.push("</svg>");
  return parts.join("");
}

function checkSize(size: number | undefined): number {
  const s = size ?? DEFAULT_SIZE;
  if (!Number.isInteger(s) || s < 8 || s > 2048) throw new Error(`render: size must be an integer in [8, 2048], got ${size}`);
  return s;
}

/**
 * Render a scene to PNG bytes.
 * @example
 * const png = await renderScene(sceneAt("sft", 0), { size: 64 });
 */
export async function renderScene(scene: Pick<Scene, "objects" | "text">, opts: RenderOptions = {}): Promise<Uint8Array> {
  const buf = await sharp(Buffer.from(sceneToSvg(scene, opts))).png({ compressionLevel: 1 }).toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Render many scenes to PNG bytes (sharp runs them on libuv's thread pool). */
export function renderScenes(scenes: readonly Pick<Scene, "objects" | "text">[], opts: RenderOptions = {}): Promise<Uint8Array[]> {
  return Promise.all(scenes.map((s) => renderScene(s, opts)));
}

/**
 * Render a scene to raw interleaved RGB bytes, `[size, size, 3]`.
 * @example
 * const { data, width } = await renderSceneRgb(scene); // data.length === width * width * 3
 */
export async function renderSceneRgb(scene: Pick<Scene, "objects" | "text">, opts: RenderOptions = {}): Promise<{ data: Uint8Array; width: number; height: number; channels: 3 }> {
  const { data, info } = await sharp(Buffer.from(sceneToSvg(scene, opts))).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`renderSceneRgb: expected 3 channels, got ${info.channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
}
