/** Imported first by src/main.ts: serve restarts itself with the engine's memory settings (heap.ts). */
import { restartWithHeapSettings } from "./heap.ts";

restartWithHeapSettings();
