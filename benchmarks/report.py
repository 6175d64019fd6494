"""Markdown rendering of a `run_all.py` result document."""

from benchmarks import machine_info


def _fmt_ratio(metric):
    if "median" not in metric:
        return "not measured (" + ", ".join(metric.get("missing", [])) + ")", "", ""
    value = f"**{metric['median']:.2f}** [{metric['min']:.2f}–{metric['max']:.2f}]"
    if metric["type"] == "throughput":
        value = f"**{metric['median']:.1f}**/s [{metric['min']:.1f}–{metric['max']:.1f}]"
    if metric["type"] == "mfu":
        value = (f"**{metric['median'] * 100:.0f}%** "
                 f"[{metric['min'] * 100:.0f}–{metric['max'] * 100:.0f}%]")
        if "peak_gflop_per_s" in metric:
            value += f" of {metric['peak_gflop_per_s']:.0f} GFLOP/s"
    target = metric.get("target")
    if target is None:
        return value, "", ""
    shown = f"≥ {target * 100:.0f}%" if metric["type"] == "mfu" else f"≥ {target:.2f}×"
    return value, shown, "yes" if metric.get("met") else "**no**"


def _ms(seconds):
    return f"{seconds * 1e3:.1f}"


def _env_text(env):
    shown = [f"{k}={v}" for k, v in (env or {}).items() if v is not None]
    return ", ".join(shown) if shown else "none of the recorded variables set"


def machine_lines(document):
    """The "Machine" section: CPU, ISA flags, framework builds, each worker's thread settings."""
    machine = document.get("machine", {})
    cpu = machine.get("cpu", {})
    lines = ["## Machine", ""]
    key = document.get("results_key") or machine.get("generation_key", "?")
    lines.append(f"* CPU: {machine_info.describe(machine)}; results key `{key}`.")
    flags = cpu.get("isa_flags")
    if flags:
        lines.append("* ISA flags: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
                     + ".")
    packages = machine.get("packages") or {}
    if packages:
        lines.append("* Packages: " + ", ".join(f"{k} {v}" for k, v in packages.items() if v) + ".")
    lines.append(f"* Driver environment: {_env_text(machine.get('env'))}.")
    for side, info in (document.get("workers") or {}).items():
        build = info.get("build") or {}
        if side.startswith("torch"):
            text = (f"torch {build.get('torch', '?')}, {build.get('num_threads', '?')} threads, "
                    f"{build.get('num_interop_threads', '?')} inter-op, ATen CPU capability "
                    f"{build.get('cpu_capability', '?')}, MKL {build.get('mkl', '?')}, oneDNN "
                    f"{build.get('mkldnn', '?')}")
        elif build:
            text = (f"TensorFlow {build.get('tensorflow', '?')}, oneDNN build {build.get('onednn', '?')} "
                    f"(TF_ENABLE_ONEDNN_OPTS {build.get('onednn_opts', '?')}), intra/inter-op threads "
                    f"{build.get('intra_op_threads', '?')}/{build.get('inter_op_threads', '?')}")
            if build.get("gpus"):
                text += ", GPUs: " + "; ".join(
                    f"{g['name']} (compute capability {g.get('compute_capability')})"
                    for g in build["gpus"])
        else:
            text = "no build recorded"
        lines.append(f"* Worker `{side}`: {text}; environment: {_env_text(build.get('env'))}.")
    configs = document.get("reference_configs")
    if configs:
        lines.append("* Reference configurations: " + "; ".join(
            f"{label}: {c['settings']}" for label, c in configs.items())
            + ". A speed-up against `transformers` is taken against the faster of the two in "
              "each round.")
    return lines + [""]


def markdown(document):
    """The results table(s) as Markdown text."""
    lines = [f"# florence_keras benchmarks ({document['mode']})", ""]
    machine = document.get("machine", {})
    workers = document.get("workers", {})
    lines += [
        f"Command: `{document['command']}`  ",
        f"Date: {document['date']}; {document['rounds']} interleaved rounds per group, "
        f"{document['threads']} intra-op threads on each side.  ",
        f"Machine: {machine_info.describe(machine)}, {machine.get('cpu_count')} cores, "
        f"{machine.get('MemTotal', '?')}; load average at start "
        f"{document['load_average_start'][0]:.1f}, at end "
        f"{document.get('load_average_end', [float('nan')])[0]:.1f}.  ",
    ]
    versions = []
    for side in ("tf", "torch"):
        info = workers.get(side)
        if info:
            versions.append(f"{side} worker pid {info.get('pid')}")
    git = document.get("git", {})
    if document.get("baseline_root"):
        lines.append(f"Baseline tree (rows marked \"(baseline)\"): `{document['baseline_root']}`, "
                     "run as a third worker in the same rounds.  ")
    if git.get("commit"):
        dirty = git.get("uncommitted_changes") or []
        lines.append(f"Code: commit {git['commit'][:10]}"
                     + (f" + uncommitted changes in {len(dirty)} files" if dirty else "") + ".  ")
    lines += ["", "Ratios are medians of per-round ratios [min–max over rounds]; a speed-up is "
              "reference time ÷ florence_keras time (best vs best: fastest iteration of each). "
              "MFU = achieved FLOP/s (per round) ÷ the best matmul FLOP/s of the same run, in the "
              "same precision (FLOPs = 2 × multiply-adds, attention products included; "
              "benchmarks/flop_counter.py).", ""]
    lines += machine_lines(document)
    load = document["load_average_start"][0]
    cores = machine.get("cpu_count") or 1
    if load > 1.5 * cores:
        lines += [f"**Warning: the machine was oversubscribed (load average {load:.1f} on {cores} "
                  "cores).** Every side slows down, torch's OpenMP more than TensorFlow's thread "
                  "pool, so ratios against torch lean towards florence_keras; compare runs made at "
                  "similar load only.", ""]
    lines += ["| benchmark | metric | result | best vs best | target | met |",
              "|---|---|---|---|---|---|"]
    for group in document.get("groups", []):
        if group.get("errors") and not group.get("metrics"):
            lines.append(f"| {group['title']} | — | not run: {'; '.join(group['errors'])[:200]} "
                         "| | | |")
            continue
        for metric in group.get("metrics", []):
            value, target, met = _fmt_ratio(metric)
            best = f"{metric['best_vs_best']:.2f}" if "best_vs_best" in metric else ""
            lines.append(f"| {group['title']} | {metric['name']} | {value} | {best} | {target} "
                         f"| {met} |")
        if "baseline_max_abs_diff" in group:
            lines.append(f"| {group['title']} | max \\|output difference\\| baseline vs this tree "
                         f"| {group['baseline_max_abs_diff']:.1e} | | | |")
        if "parity_max_abs_diff" in group:
            lines.append(f"| {group['title']} | max \\|pooled output difference\\| vs transformers "
                         f"| {group['parity_max_abs_diff']:.1e} | | | |")
    memory = document.get("memory")
    if memory and memory.get("ratio"):
        ratio = memory["ratio"]
        lines.append(f"| Gradient cache, chunk {memory['chunk']} | {ratio['name']} | "
                     f"**{ratio['value']:.2f}** | | ≤ {ratio['target']:.2f}× | "
                     f"{'yes' if ratio['met'] else '**no**'} |")
    pairs = []
    for group in document.get("groups", []):
        metrics = {m["name"]: m for m in group.get("metrics", [])}
        for name, metric in metrics.items():
            twin = metrics.get(name + " (baseline)")
            if twin is not None:
                pairs.append((group["title"], metric, twin))
    if pairs:
        lines += ["", "## Baseline tree vs this tree, same rounds", "",
                  "| benchmark | metric | baseline | this tree | target |", "|---|---|---|---|---|"]
        for title, metric, twin in pairs:
            after, target, _ = _fmt_ratio(metric)
            before, _, _ = _fmt_ratio(twin)
            lines.append(f"| {title} | {metric['name']} | {before} | {after} | {target} |")
    lines += ["", "## Per case", "",
              "| benchmark | case | median ms | min ms | max ms | items/s | GFLOP/s | iters/round |",
              "|---|---|---|---|---|---|---|---|"]
    for group in document.get("groups", []):
        for label, member in group.get("members", {}).items():
            seconds = member.get("seconds")
            if not seconds:
                continue
            items = member.get("items_per_s")
            gflops = member.get("gflop_per_s")
            lines.append(
                f"| {group['name']} | {label} | {_ms(seconds['median'])} | {_ms(seconds['min'])} "
                f"| {_ms(seconds['max'])} | {'' if items is None else f'{items:.1f}'} | "
                f"{'' if gflops is None else f'{gflops:.1f}'} | "
                f"{member['iterations_per_round']} |")
        for error in group.get("errors", []):
            lines.append(f"| {group['name']} | error | {error.strip().splitlines()[-1][:160]} "
                         "| | | | | |")
    if memory:
        lines += ["", f"## Gradient cache: peak RSS per contrastive batch (chunk {memory['chunk']})",
                  "", "One subprocess per row; model: "
                  + ("the tiny test config" if "preset" in memory["config"] else
                     "small towers at 32×32 (what grows with B — inputs, [B, D] embeddings, the "
                     "loss's logits: [B, B] without the cache, [chunk, B] blocks with it — does not "
                     "depend on the towers), projection 512")
                  + ".", "",
                  "| batch | mode | peak RSS MiB | RSS after build MiB | inputs MiB | step s (incl. trace) |",
                  "|---|---|---|---|---|---|"]
        for probe in memory["probes"]:
            mode = f"cache, chunk {probe['chunk']}" if probe["chunk"] else "no cache"
            if "peak_rss_mib" in probe:
                lines.append(f"| {probe['batch']} | {mode} | {probe['peak_rss_mib']:.0f} | "
                             f"{probe['rss_built_mib']:.0f} | {probe['input_mib']:.1f} | "
                             f"{probe['step_s_including_trace']:.1f} |")
            else:
                reason = probe.get("skipped") or probe.get("error", "?")
                lines.append(f"| {probe['batch']} | {mode} | {reason} | | | |")
    if document.get("errors"):
        lines += ["", "Errors: " + "; ".join(document["errors"])]
    lines += ["", f"Total wall time {document.get('wall_s', 0):.0f} s.", ""]
    return "\n".join(lines)
