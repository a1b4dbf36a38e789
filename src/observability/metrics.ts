/** A small Prometheus text-format registry: counters you add to, gauges read when scraped. */
type Labels = Record<string, string>;

interface Family {
  type: "counter" | "gauge";
  help: string;
  values: Map<string, number>;
  read?: () => Array<[Labels, number]>;
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const family = this.family(name, "counter", help);
    return (labels = {}, by = 1) => {
      const key = labelText(labels);
      family.values.set(key, (family.values.get(key) ?? 0) + by);
    };
  }

  gauge(name: string, help: string, read: () => Array<[Labels, number]> | number): void {
    const family = this.family(name, "gauge", help);
    family.read = () => {
      const value = read();
      return typeof value === "number" ? [[{}, value]] : value;
    };
  }

  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      const rows = f.read ? f.read().map(([l, val]) => [labelText(l), val] as const) : [...f.values];
      for (const [labels, value] of rows) out.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
    }
    return `${out.join("\n")}\n`;
  }

  private family(name: string, type: Family["type"], help: string): Family {
    const existing = this.families.get(name);
    if (existing) return existing;
    const created: Family = { type, help, values: new Map() };
    this.families.set(name, created);
    return created;
  }
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, val]) => `${k}="${val.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`).join(",")}}`;
}
