export * from "./index.js";

/**
 * What `init` loads the verifier from: the URL of the package's
 * `latch_verifier_bg.wasm` (as your bundler emits it), a `Response` or its
 * promise, its bytes, or a compiled `WebAssembly.Module`.
 */
export type WasmSource =
  | string
  | URL
  | Request
  | Response
  | Promise<Response>
  | BufferSource
  | WebAssembly.Module;

/** Loads the wasm once (later calls share the first); call before any other export. */
export function init(wasm: WasmSource): Promise<void>;
/** Loads the wasm at once from a compiled module or its bytes (edge workers). */
export function initSync(wasm: WebAssembly.Module | BufferSource): void;
