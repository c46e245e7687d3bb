import { MemoryBackend, type MemoryBackendOptions } from "./memory-backend.js";

export { MemoryBackend, type MemoryBackendOptions };

/** The in-process backend: `new Storage(memoryBackend())`. Jobs live as long as the process. */
export function memoryBackend(options: MemoryBackendOptions = {}): MemoryBackend {
  return new MemoryBackend(options);
}
