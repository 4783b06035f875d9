#!/usr/bin/env python3
"""Writes crates/extract/tests/data/text_cases.tsv: table-driven free-text extraction cases.

Each row: expectation, type, value, text (tab-separated; \\t and \\n escaped in text).
  +  the indicator (type, value) must be extracted from text
  -  no indicator of that type with that value may be extracted ("*" = none of that type at all)
The cases cross every indicator family with every defang style the extractor claims to undo, and
add the near-misses that must not match. Re-run after editing; review the diff.
"""
import itertools, os

rows = []
def pos(kind, value, text): rows.append(("+", kind, value, text))
def neg(kind, value, text): rows.append(("-", kind, value, text))

# --- defang styles -------------------------------------------------------------------------
DOTS = ["[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}", "[DOT]", "(DOT)", " [dot] ", " (dot) "]
SCHEMES = [("hxxp", "http"), ("hxxps", "https"), ("hXXp", "http"), ("HXXPS", "https"), ("hxtp", "http"), ("hxtps", "https")]
SEPARATORS = ["://", "[://]", "[:]//"]
ATS = ["[@]", "(@)", "{@}", "[at]", "(at)", "[AT]", " [at] ", " (at) "]
CONTEXTS = ["{}", "see {} now", "({})", "<{}>", "'{}'", "\"{}\"", "{}.", "{},", "{};", "- {}\n", "\t{}\t"]

DOMAINS = ["evil.example.com", "cdn-update.example-mirror.net", "login.micros0ft-support.co.uk", "a1.b2.c3.example.org", "xn--80ak6aa92e.xn--p1ai", "update.sync-cdn.io"]
for domain, dot in itertools.product(DOMAINS, DOTS):
    pos("domain", domain, "beacon to " + domain.replace(".", dot) + " observed")
for domain, context in itertools.product(DOMAINS[:3], CONTEXTS):
    pos("domain", domain, context.format(domain))
pos("domain", "evil.example.com", "EVIL.EXAMPLE.COM in caps")
pos("domain", "evil.example.com", "trailing root evil.example.com. end")

URLS = [("evil.example.com/x.php?a=1&b=2", "/x.php?a=1&b=2"), ("203.0.113.7:8080/gate", "/gate"), ("cdn.example.net/dl/stage2.bin", "/dl/stage2.bin")]
for (rest, _), (defanged, live), sep in itertools.product(URLS, SCHEMES, SEPARATORS):
    host, _, tail = rest.partition("/")
    text = defanged + sep + host.replace(".", "[.]") + "/" + tail
    pos("url", live + "://" + rest, "payload at " + text + " today")
for rest, _ in URLS:
    pos("url", "https://" + rest, "(https://" + rest + ")")
    pos("url", "https://" + rest, "https://" + rest + ".")
    pos("url", "http://" + rest, "\"http://" + rest + "\"")
pos("url", "https://en.wikipedia.org/wiki/Foo_(bar)", "see https://en.wikipedia.org/wiki/Foo_(bar) for more")
pos("url", "ftp://files.example.org/pub/x.zip", "fxp://files[.]example[.]org/pub/x.zip")
pos("url", "http://[2001:db8::1]/x", "http://[2001:db8::1]/x")
pos("url", "https://evil.example.com:8443/a", "HTTPS://EVIL.EXAMPLE.COM:8443/a")

EMAILS = ["billing@invoices-contoso.co", "j.doe+tag@mail.example.org", "it-helpdesk@login-example.com"]
for email, at in itertools.product(EMAILS, ATS):
    local, domain = email.split("@")
    pos("email", email, "from " + local + at + domain.replace(".", "[.]") + " sent")
    pos("domain", domain, "from " + local + at + domain.replace(".", "[.]") + " sent")
for email in EMAILS:
    pos("email", email, "<" + email + ">")
    pos("email", email, "mailto " + email + ".")

IPV4 = ["203.0.113.7", "198.51.100.23", "10.0.0.1", "192.168.1.254", "8.8.8.8", "255.255.255.255", "0.0.0.0"]
for ip, dot in itertools.product(IPV4, ["[.]", "(.)", "{.}", "[dot]"]):
    pos("ipv4", ip, "connect " + ip.replace(".", dot) + " port 443")
for ip, context in itertools.product(IPV4[:3], CONTEXTS + ["{}:443", "{}/24", "tcp://{}", "{}-203.0.113.9"]):
    pos("ipv4", ip, context.format(ip))
pos("ipv4", "203.0.113.9", "range 203.0.113.7-203.0.113.9")
pos("ipv4", "203.0.113.7", "mixed 203.0.113[.]7")

IPV6 = [
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:85A3::8A2E:370:7334", "2001:db8:85a3::8a2e:370:7334"),
    ("fe80::1%eth0", "fe80::1"),
    ("::ffff:192.0.2.128", "::ffff:192.0.2.128"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("::1", "::1"),
    ("2001:db8::", "2001:db8::"),
    ("fd00:ab:cd::10", "fd00:ab:cd::10"),
]
for raw, canonical in IPV6:
    for context in ["addr {} seen", "({})", "[{}]:443", "{}.", "{},"]:
        pos("ipv6", canonical, context.format(raw))
pos("ipv6", "2001:db8::1", "2001[:]db8[:][:]1 defanged")

HASHES = {
    "md5": "9d8e30daf21108092d5980c931876b7e",
    "sha1": "7c04ec2377e32b3c7742f581f6c5437464dd2cf2",
    "sha256": "3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8",
    "sha512": "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
}
for (kind, value), context in itertools.product(HASHES.items(), CONTEXTS + ["{}:file.exe", "hash={}", "{}\r\n", "SHA: {}"]):
    pos(kind, value, context.format(value))
for kind, value in HASHES.items():
    pos(kind, value, value.upper() + " uppercase")
    neg(kind, "*", "x" + value + " glued to a word")
    neg(kind, "*", value + "g glued to a word")
    neg(kind, "*", value + "0 one digit longer")
    neg(kind, "*", value[1:] + " one digit shorter")
neg("md5", "*", HASHES["sha256"])
neg("sha1", "*", HASHES["sha256"])
neg("md5", "*", HASHES["sha1"])
neg("sha256", "*", HASHES["sha512"])

for cve in ["CVE-2021-44228", "CVE-2023-23397", "CVE-2017-0144", "CVE-2024-1234567"]:
    for context in ["exploits {}", "({})", "{}.", "{} ,", "{}".lower()]:
        pos("cve", cve, context.format(cve))
    pos("cve", cve, cve.lower() + " lowercase")
neg("cve", "*", "CVE-21-44228 short year")
neg("cve", "*", "CVE-2021-442 short number")
neg("cve", "*", "XCVE-2021-44228X glued")

for tid in ["T1059", "T1059.001", "T1566.002", "AML.T0051", "AML.T0044.001", "T1003.001"]:
    for context in ["maps to {}", "({})", "{},", "[{}]", "{}."]:
        pos("attack_technique", tid, context.format(tid))
neg("attack_technique", "*", "see T12345 and T105 and TA0001 and T1059.01")
neg("attack_technique", "*", "AT1059 glued")

REG = [
    "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    "HKEY_CURRENT_USER\\Software\\Classes\\ms-settings\\shell\\open\\command",
    "HKLM\\SYSTEM\\CurrentControlSet\\Services\\WinDefend",
    "HKCU\\Environment",
    "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon",
]
for key in REG:
    for context in ["set {} for persistence", "\"{}\"", "({})", "{}.", "reg add {} /v x"]:
        pos("registry_key", key, context.format(key))

PATHS = [
    "C:\\Windows\\System32\\cmd.exe",
    "C:\\Users\\Public\\Libraries\\svc.dll",
    "C:\\Program Files (x86)\\Acme\\updater.exe",
    "\\\\fileserver\\share$\\drop\\x.ps1",
    "%APPDATA%\\Microsoft\\Word\\STARTUP\\x.wll",
    "/etc/cron.d/update",
    "/tmp/.X11-unix/.x",
    "/usr/local/bin/kworkerd",
]
for path in PATHS:
    for context in ["dropped {} and ran it", "\"{}\"", "({})", "{}.", "path={} "]:
        pos("file_path", path, context.format(path))
pos("file_path", "C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\cmd.exe /c C:\\temp\\x.bat")
pos("file_path", "C:\\temp\\x.bat", "C:\\Windows\\System32\\cmd.exe /c C:\\temp\\x.bat")
pos("file_path", "C:\\Users\\a b\\OneDrive - Corp\\x.ps1", "-File \"C:\\Users\\a b\\OneDrive - Corp\\x.ps1\" -x")
neg("file_path", "*", "and/or TCP/IP client/server")
neg("file_path", "*", "visit https://example.com/a/b/c now")

for mac, canonical in [("00:1A:2B:3C:4D:5E", "00:1a:2b:3c:4d:5e"), ("00-1a-2b-3c-4d-5e", "00:1a:2b:3c:4d:5e"), ("AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff")]:
    for context in ["iface {} up", "({})", "{}.", "mac={}"]:
        pos("mac", canonical, context.format(mac))
neg("mac", "*", "00:1a:2b:3c:4d:5e:6f seven groups")
neg("mac", "*", "00:1a-2b:3c:4d:5e mixed separators")
neg("ipv6", "*", "00:1a:2b:3c:4d:5e is a MAC")

for asn, canonical in [("AS15169", "AS15169"), ("AS 13335", "AS13335"), ("ASN 64501", "AS64501"), ("ASN64501", "AS64501")]:
    for context in ["announced by {}", "({})", "{},"]:
        pos("asn", canonical, context.format(asn))
neg("asn", "*", "AS0 is reserved")
neg("asn", "*", "as 15169 lowercase words")

# --- near-misses for domains and IPs -------------------------------------------------------
for text in ["open report.pdf", "run setup.exe", "the file invoice.docx", "loaded payload.dll", "see e.g. the docs", "i.e. this", "U.S. based",
             "version 1.2.3", "Fig. 3.2", "script.ps1 ran", "readme.txt", "archive.7z", "image.png", "config.json", "main.py", "lib.rs", "index.php"]:
    neg("domain", "*", text)
for text in ["version 1.2.3.4.5 released", "value 999.1.1.1", "1.2.3 only three", "256.256.256.256", "01.02.03.04 leading zeros", "OID 1.3.6.1.4.1.311"]:
    neg("ipv4", "*", text)
for text in ["time 10:30:00 today", "ratio 3:2", "std::string", "a::b::c::d::e::f::g::h::i"]:
    neg("ipv6", "*", text)
neg("domain", "*", "C:\\Windows\\System32\\drivers.sys")
neg("domain", "*", "/tmp/evil.sh")
neg("email", "*", "user@localhost")
neg("email", "*", "@handle mention")

def escape(text):
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

out = os.path.join(os.path.dirname(__file__), "..", "crates", "extract", "tests", "data", "text_cases.tsv")
with open(out, "w") as f:
    f.write("# expectation\ttype\tvalue\ttext   (generated by scripts/gen_extract_cases.py; review diffs)\n")
    for expectation, kind, value, text in rows:
        f.write("\t".join([expectation, kind, escape(value), escape(text)]) + "\n")
print(f"{len(rows)} cases -> {os.path.normpath(out)}")
