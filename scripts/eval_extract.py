#!/usr/bin/env python3
"""Precision/recall of `aluskort extract --jsonl` on a generated threat-report corpus with ground truth,
side by side with ioc-finder when it is installed (pip install ioc-finder).

The corpus plants indicators of every type, defanged in the ways reports write them, into report-like
prose that itself holds near-misses (file names, version numbers, times, dotted abbreviations) which
must not be reported. Ground truth follows ioc-finder's conventions: a URL's host and an e-mail's domain
are also domains; an IP written in a URL is also an IPv4.

usage: scripts/eval_extract.py [--docs N] [--seed S] [--binary target/release/aluskort]
"""
import argparse, collections, json, random, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--docs", type=int, default=300)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--binary", default="target/release/aluskort")
args = p.parse_args()
rng = random.Random(args.seed)

WORDS = ("the actor group campaign deployed loader payload stage beacon persistence lateral movement credential "
         "dumping exfiltration archive staging operator infrastructure victim network host server workstation domain "
         "controller phishing lure document macro script scheduled task service registry key value process injection "
         "hollowing obfuscation packer encryption command control channel protocol traffic observed analysts assess "
         "with moderate confidence that this activity overlaps previous reporting").split()
NEAR_MISSES = ["report.pdf", "setup.exe", "invoice.docx", "payload.dll", "e.g.", "i.e.", "v2.1.3", "1.2.3.4.5", "10:30:00",
               "Fig. 2.1", "U.S.", "main.py", "config.json", "readme.txt", "and/or", "TCP/IP", "3:2", "T12345", "CVE-21-1",
               "archive.7z", "std::vector", "00:1a:2b:3c", "AS0", "version 4.0.30319"]
TLDS = ["com", "net", "org", "io", "info", "ru", "cn", "co.uk", "xyz", "top", "biz", "de", "online", "site"]

def word(): return rng.choice(WORDS)
def label(): return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(3, 10))).strip("-") or "x"
def domain(): return ".".join([label() for _ in range(rng.randint(1, 3))] + [rng.choice(TLDS)])
def ipv4(): return ".".join(str(rng.randint(1, 254)) for _ in range(4))
def hexs(n): return "".join(rng.choice("0123456789abcdef") for _ in range(n))
def ipv6():
    groups = [format(rng.randint(0, 0xffff), "x") for _ in range(8)]
    import ipaddress
    return str(ipaddress.IPv6Address(":".join(groups)))

def defang_dots(s):
    return s.replace(".", rng.choice(["[.]", "(.)", "{.}", "[dot]", "(dot)", "."]))

def gen_indicator():
    kind = rng.choice(["ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "sha512", "cve", "attack_technique",
                       "registry_key", "file_path", "mac", "asn"])
    truth = []
    if kind == "ipv4":
        v = ipv4(); truth.append(("ipv4", v)); text = defang_dots(v) if rng.random() < 0.5 else v
    elif kind == "ipv6":
        v = ipv6(); truth.append(("ipv6", v)); text = v.upper() if rng.random() < 0.3 else v
    elif kind == "domain":
        v = domain(); truth.append(("domain", v)); text = defang_dots(v)
    elif kind == "url":
        host = domain() if rng.random() < 0.8 else ipv4()
        path = "/" + "/".join(label() for _ in range(rng.randint(0, 3))) + rng.choice(["", ".php", ".exe?id=7", "/"])
        scheme = rng.choice(["http", "https"])
        v = f"{scheme}://{host}{path}"
        is_ip = all(part.isdigit() for part in host.split("."))
        truth.append(("url", v)); truth.append(("ipv4" if is_ip else "domain", host))
        shown_scheme = {"http": rng.choice(["http", "hxxp", "hXXp"]), "https": rng.choice(["https", "hxxps", "HXXPS"])}[scheme]
        sep = rng.choice(["://", "[://]", "[:]//"])
        text = shown_scheme + sep + defang_dots(host) + path
    elif kind == "email":
        d = domain(); local = label() + rng.choice(["", ".", "_", "+"]) + label()
        local = local.strip("._+")
        v = f"{local}@{d}"; truth += [("email", v), ("domain", d)]
        text = local + rng.choice(["@", "[@]", "[at]", "(at)"]) + defang_dots(d)
    elif kind in ("md5", "sha1", "sha256", "sha512"):
        n = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}[kind]; v = hexs(n); truth.append((kind, v))
        text = v.upper() if rng.random() < 0.3 else v
    elif kind == "cve":
        v = f"CVE-{rng.randint(2000, 2025)}-{rng.randint(1000, 99999)}"; truth.append(("cve", v)); text = v
    elif kind == "attack_technique":
        v = rng.choice([f"T{rng.randint(1000, 1660)}", f"T{rng.randint(1000, 1660)}.{rng.randint(1, 15):03d}", f"AML.T{rng.randint(0, 60):04d}"])
        truth.append(("attack_technique", v)); text = v
    elif kind == "registry_key":
        v = rng.choice(["HKLM", "HKCU", "HKEY_LOCAL_MACHINE"]) + "\\" + "\\".join(rng.choice(["Software", "Microsoft", "Windows", "CurrentVersion", "Run", "Services", label()]) for _ in range(rng.randint(2, 5)))
        truth.append(("registry_key", v)); text = v
    elif kind == "file_path":
        if rng.random() < 0.6:
            v = "C:\\" + "\\".join(rng.choice(["Users", "Public", "ProgramData", "Windows", "Temp", label()]) for _ in range(rng.randint(1, 3))) + "\\" + label() + rng.choice([".exe", ".dll", ".ps1", ".bat"])
        else:
            v = "/" + "/".join(rng.choice(["tmp", "etc", "var", "usr", "lib", label()]) for _ in range(rng.randint(1, 3))) + "/" + label()
        truth.append(("file_path", v)); text = v
    elif kind == "mac":
        sep = rng.choice([":", "-"]); octets = [hexs(2) for _ in range(6)]
        v = ":".join(octets); truth.append(("mac", v)); text = sep.join(octets).upper() if rng.random() < 0.5 else sep.join(octets)
    else:
        n = rng.randint(1000, 400000); v = f"AS{n}"; truth.append(("asn", v)); text = rng.choice([f"AS{n}", f"ASN {n}", f"AS {n}"])
    return text, truth

def sentence(parts):
    out = []
    for part in parts:
        out.append(part)
    return " ".join(out)

docs, truths = [], []
for d in range(args.docs):
    truth, sentences = set(), []
    for _ in range(rng.randint(5, 15)):
        words = [word() for _ in range(rng.randint(6, 16))]
        for _ in range(rng.randint(0, 2)):
            text, t = gen_indicator()
            wrap = rng.choice(["{}", "({})", "\"{}\"", "{},", "<{}>", "'{}'", "`{}`"])
            words.insert(rng.randint(0, len(words)), wrap.format(text))
            truth.update(t)
        if rng.random() < 0.4:
            words.insert(rng.randint(0, len(words)), rng.choice(NEAR_MISSES))
        text = " ".join(words)
        sentences.append(text + rng.choice([".", ".", ";", ":"]))
    docs.append("\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)))
    truths.append(truth)

lines = "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(docs)) + "\n"
size = sum(len(t) for t in docs)
started = time.time()
out = subprocess.run([args.binary, "extract", "--jsonl", "-"], input=lines.encode(), capture_output=True, check=True).stdout
ours_seconds = time.time() - started
ours = [set() for _ in docs]
for line in out.decode().splitlines():
    row = json.loads(line)
    ours[row["id"]] = {(i["type"], i["value"]) for i in row["iocs"]}

def score(found_sets, name):
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    misses = collections.defaultdict(list)
    for found, truth in zip(found_sets, truths):
        for kind, value in found & truth: tp[kind] += 1
        for kind, value in found - truth: fp[kind] += 1; misses["fp:" + kind].append(value)
        for kind, value in truth - found: fn[kind] += 1; misses["fn:" + kind].append(value)
    print(f"\n{name}")
    for kind in sorted(set(tp) | set(fp) | set(fn)):
        p = tp[kind] / max(1, tp[kind] + fp[kind]); r = tp[kind] / max(1, tp[kind] + fn[kind])
        print(f"  {kind:17} precision {p:.3f} recall {r:.3f}  (tp {tp[kind]}, fp {fp[kind]}, fn {fn[kind]})")
    return misses

print(f"corpus: {len(docs)} documents, {size / 1e6:.2f} MB, {sum(len(t) for t in truths)} planted indicators")
print(f"aluskort extract: {ours_seconds:.2f}s wall including process start ({size / 1e6 / ours_seconds:.2f} MB/s)")
misses = score(ours, "aluskort")
for key, values in sorted(misses.items()):
    print(f"  examples {key}: {values[:4]}")

try:
    from ioc_finder import find_iocs
except ImportError:
    print("\nioc-finder not installed: skipped"); sys.exit(0)
mapping = {"ipv4s": "ipv4", "ipv6s": "ipv6", "domains": "domain", "urls": "url", "email_addresses": "email", "md5s": "md5", "sha1s": "sha1",
           "sha256s": "sha256", "sha512s": "sha512", "cves": "cve", "registry_key_paths": "registry_key", "file_paths": "file_path",
           "mac_addresses": "mac", "asns": "asn"}
started = time.time()
theirs = []
for t in docs:
    r = find_iocs(t); found = set()
    for k, v in r.items():
        if k in mapping and isinstance(v, list): found |= {(mapping[k], x) for x in v}
        if k == "attack_techniques" and isinstance(v, dict):
            for ids in v.values(): found |= {("attack_technique", x) for x in ids}
    theirs.append(found)
their_seconds = time.time() - started
print(f"\nioc-finder: {their_seconds:.2f}s ({size / 1e6 / their_seconds:.3f} MB/s)")
score(theirs, "ioc-finder")
