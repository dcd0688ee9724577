// What the desktop shell tells the window about the engine's process: it stopped (a native crash in a
// decoder or the runtime) and was restarted, or it kept stopping and is no longer restarted. The
// browser host runs the engine in its own process and sends none.

export type EngineNotice =
  | {
      state: 'restarted';
      /** How it stopped: "signal SIGKILL", "exit code 134". */
      reason: string;
      /** Jobs that were running when it stopped; their rows say interrupted. */
      interrupted: string[];
      /** The project opened again in the new engine, or null when none was open or it could not be. */
      reopened: string | null;
      /** One sentence for a lab user. */
      message: string;
    }
  | { state: 'stopped'; reason: string; interrupted: string[]; message: string };
