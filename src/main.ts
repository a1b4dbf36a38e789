#!/usr/bin/env bun
import { defineCommand, runMain } from "citty";
import { electionCommand } from "./cli/election.ts";
import { initCommand } from "./cli/init.ts";
import { peersCommand, statusCommand, traceCommand } from "./cli/inspect.ts";
import { leaveCommand } from "./cli/leave.ts";
import {
  abtestCommand,
  eloCommand,
  modelsCommand,
  pauseCommand,
  promoteCommand,
  resumeCommand,
  rollbackCommand,
  runsCommand,
  tournamentCommand,
} from "./cli/runs.ts";
import { startCommand, upCommand } from "./cli/start.ts";
import { syncCommand } from "./cli/sync.ts";
import { drainCommand, jobsCommand, undrainCommand, workCommand } from "./cli/work.ts";
import { demoCommand } from "./demo/cli.ts";
import { VERSION } from "./version.ts";

const main = defineCommand({
  meta: {
    name: "p2p-orchestrator",
    version: VERSION,
    description: "Peer-to-peer orchestrator for AlphaZero-style training",
  },
  subCommands: {
    start: startCommand,
    up: upCommand,
    status: statusCommand,
    peers: peersCommand,
    trace: traceCommand,
    election: electionCommand,
    work: workCommand,
    jobs: jobsCommand,
    drain: drainCommand,
    undrain: undrainCommand,
    sync: syncCommand,
    init: initCommand,
    leave: leaveCommand,
    runs: runsCommand,
    models: modelsCommand,
    elo: eloCommand,
    promote: promoteCommand,
    rollback: rollbackCommand,
    pause: pauseCommand,
    resume: resumeCommand,
    abtest: abtestCommand,
    tournament: tournamentCommand,
    demo: demoCommand,
    version: defineCommand({
      meta: { name: "version", description: "Print the version" },
      run: () => console.log(VERSION),
    }),
  },
});

void runMain(main);
