import type { Graph } from "./graph.ts";
import type { Tensor } from "./tensor.ts";
import { GraphError } from "./types.ts";
export function gradients(_g: Graph, _loss: Tensor, _params: Tensor[]): Record<string, Tensor> {
  throw new GraphError("grad: not implemented yet");
}
