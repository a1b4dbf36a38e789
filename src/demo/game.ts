// Connect Four 7x6. Each player's stones are kept as one 7-bit mask per row (bit c = column c), so the four-in-a-row
// test through the last stone is a handful of shifts and ands on small integers instead of 49-bit masks, which
// JavaScript's 32-bit bit operators cannot hold.

export const COLUMNS = 7;
export const ROWS = 6;
export const CELLS = COLUMNS * ROWS;
/** Network input: the side to move's stones, the opponent's stones (row-major from the bottom), the side to move. */
export const INPUT_SIZE = 2 * CELLS + 1;

export type Outcome = "first" | "second" | "draw";

export class IllegalMove extends Error {}

export class Position {
  /** rows[player * ROWS + row]: the player's stones in that row as a bit mask over columns. */
  private readonly rows: Uint8Array;
  private readonly heights: Uint8Array;
  readonly moves: number[];
  /** 0 while the game goes on; 1 when the last mover completed four, 2 for a full board without one. */
  private state: 0 | 1 | 2;

  private constructor(rows: Uint8Array, heights: Uint8Array, moves: number[], state: 0 | 1 | 2) {
    this.rows = rows;
    this.heights = heights;
    this.moves = moves;
    this.state = state;
  }

  static start(): Position {
    return new Position(new Uint8Array(2 * ROWS), new Uint8Array(COLUMNS), [], 0);
  }

  /** Parses the played columns 1-7 ("4453"); throws IllegalMove naming the first bad character or move. */
  static fromNotation(notation: string): Position {
    const position = Position.start();
    for (let i = 0; i < notation.length; i++) {
      const ch = notation.charCodeAt(i) - 49;
      if (ch < 0 || ch >= COLUMNS) throw new IllegalMove(`move ${i + 1} "${notation[i]}" is not a column 1-7`);
      position.play(ch);
    }
    return position;
  }

  clone(): Position {
    return new Position(this.rows.slice(), this.heights.slice(), this.moves.slice(), this.state);
  }

  notation(): string {
    let text = "";
    for (const move of this.moves) text += String.fromCharCode(49 + move);
    return text;
  }

  /** The same game with every column reflected (column c becomes 6 - c). */
  mirror(): Position {
    const mirrored = Position.start();
    for (const move of this.moves) mirrored.play(COLUMNS - 1 - move);
    return mirrored;
  }

  /** 0 for the first player, 1 for the second. */
  get toMove(): number {
    return this.moves.length & 1;
  }

  get isOver(): boolean {
    return this.state !== 0;
  }

  /** Set once the game is over: who won, from the first player's view. */
  get outcome(): Outcome | undefined {
    if (this.state === 0) return undefined;
    if (this.state === 2) return "draw";
    return (this.moves.length & 1) === 1 ? "first" : "second";
  }

  canPlay(column: number): boolean {
    return this.state === 0 && column >= 0 && column < COLUMNS && (this.heights[column] ?? ROWS) < ROWS;
  }

  legalMoves(): number[] {
    const moves: number[] = [];
    for (let c = 0; c < COLUMNS; c++) if (this.canPlay(c)) moves.push(c);
    return moves;
  }

  /** Plays a column 0-6; throws IllegalMove for a full column, a column out of range, or a finished game. */
  play(column: number): void {
    if (!Number.isInteger(column) || column < 0 || column >= COLUMNS) {
      throw new IllegalMove(`column ${column} is not 0-6`);
    }
    if (this.state !== 0) throw new IllegalMove("the game is over");
    const row = this.heights[column] ?? ROWS;
    if (row >= ROWS) throw new IllegalMove(`column ${column + 1} is full`);
    const player = this.moves.length & 1;
    const index = player * ROWS + row;
    this.rows[index] = (this.rows[index] ?? 0) | (1 << column);
    this.heights[column] = row + 1;
    this.moves.push(column);
    if (this.completesFour(player, row, column)) this.state = 1;
    else if (this.moves.length === CELLS) this.state = 2;
  }

  /** Whether the stone at (row, column) is the player's. */
  stoneAt(player: number, row: number, column: number): boolean {
    return (((this.rows[player * ROWS + row] ?? 0) >> column) & 1) === 1;
  }

  /** The owner of a cell: 0, 1, or -1 when empty. */
  cell(row: number, column: number): number {
    if (this.stoneAt(0, row, column)) return 0;
    if (this.stoneAt(1, row, column)) return 1;
    return -1;
  }

  private completesFour(player: number, row: number, column: number): boolean {
    const own = (r: number): number => (r < 0 || r >= ROWS ? 0 : (this.rows[player * ROWS + r] ?? 0));
    const line = own(row);
    if ((line & (line >> 1) & (line >> 2) & (line >> 3)) !== 0) return true;
    const bit = 1 << column;
    if (row >= 3 && own(row - 1) & own(row - 2) & own(row - 3) & bit) return true;
    // Diagonals: shift each row so the diagonal through (row, column) lines up in one column, then test runs of four.
    for (const slope of [1, -1]) {
      let run = 0;
      for (let dr = -3; dr <= 3; dr++) {
        const c = column + slope * dr;
        const r = row + dr;
        if (c >= 0 && c < COLUMNS && (own(r) >> c) & 1) {
          run++;
          if (run === 4) return true;
        } else run = 0;
      }
    }
    return false;
  }

  /** Writes the network input for the side to move into `out` at `offset` (INPUT_SIZE floats). */
  encode(out: Float32Array, offset = 0): void {
    const me = this.moves.length & 1;
    for (let r = 0; r < ROWS; r++) {
      const mine = this.rows[me * ROWS + r] ?? 0;
      const theirs = this.rows[(1 - me) * ROWS + r] ?? 0;
      for (let c = 0; c < COLUMNS; c++) {
        out[offset + r * COLUMNS + c] = (mine >> c) & 1;
        out[offset + CELLS + r * COLUMNS + c] = (theirs >> c) & 1;
      }
    }
    out[offset + 2 * CELLS] = me;
  }

  /** A picture of the board, top row first: X moves first, O second. */
  render(): string {
    const lines: string[] = [];
    for (let r = ROWS - 1; r >= 0; r--) {
      let line = "|";
      for (let c = 0; c < COLUMNS; c++) line += ` ${".XO"[this.cell(r, c) + 1]}`;
      lines.push(`${line} |`);
    }
    lines.push("  1 2 3 4 5 6 7");
    return lines.join("\n");
  }
}

/** The game's result from the first player's side: 1 win, 0 draw, -1 loss. */
export function resultForFirst(outcome: Outcome): number {
  return outcome === "first" ? 1 : outcome === "second" ? -1 : 0;
}
