import { describe, expect, test } from "bun:test";
import { IllegalMove, INPUT_SIZE, Position } from "../../src/demo/game.ts";

describe("Connect Four rules", () => {
  test("four in a row wins in every direction, for either player", () => {
    const wins: [string, string][] = [
      ["1122334", "first"], // horizontal
      ["1212121", "first"], // vertical
      ["12233434464", "first"], // rising diagonal
      ["76655454424", "first"], // falling diagonal
      ["71122334", "second"], // horizontal by the second player
    ];
    for (const [line, winner] of wins) {
      const before = Position.fromNotation(line.slice(0, -1));
      expect(before.isOver).toBe(false);
      const after = Position.fromNotation(line);
      expect(after.outcome).toBe(winner as "first" | "second");
      expect(after.legalMoves()).toEqual([]);
    }
  });

  test("a full board without four is a draw", () => {
    const position = Position.fromNotation("342331511171427477613723443665755652562624");
    expect(position.moves.length).toBe(42);
    expect(position.outcome).toBe("draw");
  });

  test("illegal moves are refused: a full column, a column out of range, a finished game, bad notation", () => {
    const full = Position.fromNotation("111111");
    expect(full.canPlay(0)).toBe(false);
    expect(() => full.play(0)).toThrow(IllegalMove);
    expect(() => full.play(7)).toThrow(IllegalMove);
    expect(() => full.play(-1)).toThrow(IllegalMove);
    expect(() => Position.fromNotation("1111111")).toThrow("column 1 is full");
    expect(() => Position.fromNotation("1212121").play(2)).toThrow("the game is over");
    expect(() => Position.fromNotation("4408")).toThrow('move 3 "0"');
    expect(() => Position.fromNotation("44a")).toThrow(IllegalMove);
  });

  test("notation round trips, and mirroring twice gives the same game", () => {
    for (const line of ["", "4", "4453", "1234567712", "44444435"]) {
      const position = Position.fromNotation(line);
      expect(position.notation()).toBe(line);
      expect(position.mirror().mirror().notation()).toBe(line);
    }
    expect(Position.fromNotation("1127").mirror().notation()).toBe("7761");
    // A mirrored win is a win.
    expect(Position.fromNotation("12233434464").mirror().outcome).toBe("first");
  });

  test("the encoding is from the side to move's view", () => {
    const input = new Float32Array(INPUT_SIZE);
    Position.fromNotation("4").encode(input);
    expect(input[42 + 3]).toBe(1); // the opponent's stone in column 4, bottom row
    expect(input[3]).toBe(0);
    expect(input[84]).toBe(1); // the second player is to move
  });
});
