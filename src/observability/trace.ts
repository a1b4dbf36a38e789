/** One transition of one state machine instance, with what caused it. */
export interface TraceRecord {
  machine: string;
  instance: string;
  from: string | null;
  to: string;
  event: string;
  cause: string | null;
  at: number;
}
