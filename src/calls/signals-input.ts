// The shapes of sendCallSignal's input, shared by the schema, the relay and the events.
export const CALL_SIGNAL_KINDS = ['OFFER', 'ANSWER', 'ICE_CANDIDATE', 'RENEGOTIATE'] as const;
export type CallSignalKind = (typeof CALL_SIGNAL_KINDS)[number];

/** Largest signal payload, in bytes of UTF-8. */
export const SIGNAL_PAYLOAD_MAX_BYTES = 64 * 1024;

export interface CallSignalInput {
  callId: string | number;
  toDeviceId?: string | number | null;
  kind: CallSignalKind;
  payload: string;
}
