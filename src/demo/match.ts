// Matches in pairs: each opening (a few random plies) is played twice, once with each colour, so an advantage of
// the opening or of moving first cancels out. Counted from player A's side; pairs[k] counts the pairs in which A
// scored k half-points (0..4).

import { Position, resultForFirst } from "./game.ts";
import type { Player } from "./players.ts";
import type { Rng } from "./random.ts";

export interface MatchResult {
  wins: number;
  draws: number;
  losses: number;
  pairs: [number, number, number, number, number];
  games: number;
}

export function emptyResult(): MatchResult {
  return { wins: 0, draws: 0, losses: 0, pairs: [0, 0, 0, 0, 0], games: 0 };
}

/** A random opening of `plies` moves that does not end the game. */
export function randomOpening(plies: number, rng: Rng): Position {
  for (;;) {
    const position = Position.start();
    while (position.moves.length < plies && !position.isOver) {
      const moves = position.legalMoves();
      position.play(moves[rng.int(moves.length)] as number);
    }
    if (!position.isOver) return position;
  }
}

/** Plays one game from the opening; returns the result from the first player's side. */
export async function playGame(
  first: Player,
  second: Player,
  opening: Position,
  betweenMoves: () => Promise<void>,
): Promise<number> {
  const position = opening.clone();
  first.reset(position);
  second.reset(position);
  while (!position.isOver) {
    const mover = position.toMove === 0 ? first : second;
    const move = mover.chooseMove(position);
    position.play(move);
    first.observe(move);
    second.observe(move);
    await betweenMoves();
  }
  return resultForFirst(position.outcome ?? "draw");
}

/** Adds a pair's two scores for A (1 win, 0 draw, -1 loss) to the result. */
export function addPair(result: MatchResult, scoreAsFirst: number, scoreAsSecond: number): void {
  for (const score of [scoreAsFirst, scoreAsSecond]) {
    if (score > 0) result.wins++;
    else if (score < 0) result.losses++;
    else result.draws++;
    result.games++;
  }
  const halfPoints = scoreAsFirst + 1 + scoreAsSecond + 1;
  result.pairs[halfPoints as 0 | 1 | 2 | 3 | 4]++;
}
