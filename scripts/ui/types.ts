// What work code and the progress views agree on: the Reporter a long per-device job calls, a device's result,
// a progress update and the stages announced. Types only, so every file of ui/ can import them without a circle.

/** a stage's name, the per-item phases that belong to it (default: the name), or a batch stage */
/** The phase of a device refused before any work on it (SSH closed, not in the build): it could not be served. */
export const REFUSED_PHASE = 'select';

export type StageSpec = string | { name: string; phases?: string[]; batch?: boolean };
export type DeviceStatus = 'ok' | 'failed' | 'skipped';

export interface DeviceResult {
  id: string;
  status: DeviceStatus;
  /** the phase reached (build: render|write|seed-image|disk; provision: connect|preflight|upload|apply|verify; flash: write|verify) */
  phase: string;
  message: string;
}

export interface Progress {
  phase?: string;
  message?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export interface Reporter {
  /**
   * announce the devices about to be worked on, and the stages the work goes through in order (per-device
   * phases, or batch stages like keys and sign fed by count()); phases never announced become stages as seen
   */
  begin(title: string, ids: string[], stages?: StageSpec[]): void;
  update(id: string, p: Progress): void;
  done(result: DeviceResult): void;
  /** a line for the operator (not per device) */
  note(line: string): void;
  /** a batch stage's progress: keys 812/2000 identities, sign 0/1 */
  count?(stage: string, done: number, total: number): void;
  /** stop the live view; returns the results in the order begin() named the devices */
  end(): Promise<DeviceResult[]>;
}
