// Deliveries to local sockets take turns with everything else the event loop does. One event for
// thousands of local subscribers of a chat resolves thousands of waiting executions at once (they
// share one result, shared-execution.ts), and each then serialises its frame and writes its socket
// (~40 µs apiece). Unbounded, all of them ran in one drain of the microtask queue: 5,000 sockets
// held the loop for 200 ms and more, and every HTTP request, the sender's next one among them,
// waited behind it (the group-10k bench measured the longest hold; a CPU profile showed the stretch
// to be graphql-ws's `next` and the socket writes, one after another, inside runMicrotasks).
//
// So each turn of the event loop lets DELIVERIES_PER_TURN deliveries through; the others wait, in
// the order they came, for the following turns. A turn ends with setImmediate, which runs after the
// poll phase: requests that arrived meanwhile are read, and their work runs, between two chunks.

/**
 * ~40 µs each: ~10 ms of delivery per turn. Fewer starve delivery when the loop is saturated: the
 * fanout bench (1,000 subscribers, 25 messages/s, a server at 100 % of a core) measured delivery p99
 * 1.2 s at 100 per turn against ~130 ms with no turns (or 500); 250 keeps it at a fraction of that
 * while the group-10k sender's answer stays under 20 ms p99 (bench/RESULTS.md, "Deliveries per turn").
 */
export const DELIVERIES_PER_TURN = 250;

let used = 0;
let scheduled = false;
/** Waiting deliveries, oldest first, from `head` on (a queue that does not shift arrays of thousands). */
let waiting: Array<() => void> = [];
let head = 0;

const nextTurn = () => {
  scheduled = false;
  used = 0;
  const end = Math.min(waiting.length, head + DELIVERIES_PER_TURN);
  for (; head < end; head++) {
    used++;
    waiting[head]!();
  }
  if (head === waiting.length) {
    waiting = [];
    head = 0;
  }
  // Also after a turn with deliveries only: the next ones must count against a fresh turn.
  if (used > 0) schedule();
};

const schedule = () => {
  if (scheduled) return;
  scheduled = true;
  setImmediate(nextTurn);
};

/**
 * Takes a delivery's place in this turn: undefined when it may go now, else a promise that settles
 * on the turn it may go in. Deliveries keep the order in which they asked.
 */
export function deliveryTurn(): Promise<void> | undefined {
  schedule();
  if (head === waiting.length && used < DELIVERIES_PER_TURN) {
    used++;
    return undefined;
  }
  return new Promise<void>((resolve) => waiting.push(resolve));
}
