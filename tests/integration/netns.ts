/**
 * A private network for integration tests: each node in its own network namespace, joined by a bridge
 * in the root namespace, so a node can be cut off by taking its link down. Linux and root only.
 */
function ip(...args: string[]): void {
  const r = Bun.spawnSync(["ip", ...args], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

function iptables(ns: string, ...args: string[]): void {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "iptables", ...args], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`iptables ${args.join(" ")} in ${ns}: ${r.stderr.toString().trim()}`);
}

export class NetnsLab {
  readonly k = 1 + Math.floor(Math.random() * 250);
  private readonly bridge = `p2pb${this.k}`;
  private made = 0;

  constructor(readonly count: number) {}

  /** Why the lab cannot run here, or null if it can. */
  static unavailable(): string | null {
    if (process.platform !== "linux") return "network namespaces need Linux";
    if (process.getuid?.() !== 0) return "network namespaces need root";
    const probe = `p2pprobe${process.pid}`;
    const r = Bun.spawnSync(["ip", "netns", "add", probe], { stderr: "pipe" });
    if (r.exitCode !== 0) return `ip netns add failed: ${r.stderr.toString().trim()}`;
    Bun.spawnSync(["ip", "netns", "del", probe]);
    return null;
  }

  ns(i: number): string {
    return `p2p${this.k}n${i}`;
  }

  host(i: number): string {
    return `10.213.${this.k}.${i + 1}`;
  }

  up(): void {
    ip("link", "add", "name", this.bridge, "type", "bridge");
    ip("addr", "add", `10.213.${this.k}.254/24`, "dev", this.bridge);
    ip("link", "set", this.bridge, "up");
    for (let i = 0; i < this.count; i++) {
      const ns = this.ns(i);
      ip("netns", "add", ns);
      this.made = i + 1;
      ip("link", "add", `v${this.k}n${i}`, "type", "veth", "peer", "name", `b${this.k}n${i}`);
      ip("link", "set", `v${this.k}n${i}`, "netns", ns);
      ip("link", "set", `b${this.k}n${i}`, "master", this.bridge, "up");
      ip("-n", ns, "addr", "add", `${this.host(i)}/24`, "dev", `v${this.k}n${i}`);
      ip("-n", ns, "link", "set", `v${this.k}n${i}`, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
  }

  /** Runs argv inside node i's namespace. */
  wrap(i: number, argv: string[]): string[] {
    return ["ip", "netns", "exec", this.ns(i), ...argv];
  }

  cut(i: number): void {
    ip("link", "set", `b${this.k}n${i}`, "down");
  }

  heal(i: number): void {
    ip("link", "set", `b${this.k}n${i}`, "up");
  }

  /** Node i drops every packet from node j: one side of a partition between them. */
  dropFrom(i: number, j: number): void {
    iptables(this.ns(i), "-A", "INPUT", "-s", this.host(j), "-j", "DROP");
  }

  /** Node i drops node j's requests to its port, while i's own requests to j still work: a one-way partition. */
  dropRequestsFrom(i: number, j: number, port: number): void {
    iptables(this.ns(i), "-A", "INPUT", "-p", "tcp", "-s", this.host(j), "--dport", String(port), "-j", "DROP");
  }

  /**
   * Node i behind NAT: nobody can open a connection to its port, except the test's own host (an operator on the
   * machine); its own connections out, and their answers, still work.
   */
  refuseInbound(i: number, port: number): void {
    iptables(
      this.ns(i),
      "-A",
      "INPUT",
      "-p",
      "tcp",
      "-s",
      `10.213.${this.k}.254`,
      "--dport",
      String(port),
      "-j",
      "ACCEPT",
    );
    iptables(this.ns(i), "-A", "INPUT", "-p", "tcp", "--dport", String(port), "-j", "DROP");
  }

  /** Every partition rule removed and every link up. */
  healAll(): void {
    for (let i = 0; i < this.made; i++) {
      iptables(this.ns(i), "-F", "INPUT");
      this.heal(i);
    }
  }

  /** Why partitions between namespaces cannot be made here (no iptables), or null. */
  static partitionsUnavailable(): string | null {
    const missing = "iptables is not installed (apt-get install iptables)";
    try {
      return Bun.spawnSync(["iptables", "--version"], { stderr: "pipe", stdout: "pipe" }).exitCode === 0
        ? null
        : missing;
    } catch {
      return missing;
    }
  }

  down(): void {
    for (let i = 0; i < this.made; i++) Bun.spawnSync(["ip", "netns", "del", this.ns(i)]);
    Bun.spawnSync(["ip", "link", "del", this.bridge]);
  }
}
