/** A binary min-heap of timed events; ties run in the order they were scheduled. */
export interface TimedEvent {
  at: number;
  order: number;
  run: () => void;
}

export class EventQueue {
  private heap: TimedEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): TimedEvent | undefined {
    return this.heap[0];
  }

  push(e: TimedEvent): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as TimedEvent, h[parent] as TimedEvent)) break;
      [h[i], h[parent]] = [h[parent] as TimedEvent, h[i] as TimedEvent];
      i = parent;
    }
  }

  pop(): TimedEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l] as TimedEvent, h[m] as TimedEvent)) m = l;
        if (r < h.length && before(h[r] as TimedEvent, h[m] as TimedEvent)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as TimedEvent, h[i] as TimedEvent];
        i = m;
      }
    }
    return top;
  }
}

function before(a: TimedEvent, b: TimedEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}
