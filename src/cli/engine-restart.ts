/** Imported first by src/main.ts: serve restarts itself with the engine's settings (engine.ts). */
import { restartWithEngineSettings } from "./engine.ts";

restartWithEngineSettings();
