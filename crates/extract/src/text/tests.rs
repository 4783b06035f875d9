use super::*;

fn found(text: &str) -> Vec<(String, String)> {
    extract_iocs(text).into_iter().map(|ioc| (ioc.kind().as_str().to_owned(), ioc.value().to_owned())).collect()
}

fn has(text: &str, kind: &str, value: &str) -> bool {
    found(text).iter().any(|(k, v)| k == kind && v == value)
}

#[test]
fn finds_each_type_in_prose() {
    let cases = [
        ("beacon to 203.0.113.7 on 443", "ipv4", "203.0.113.7"),
        ("c2 at 2001:DB8:0:0:0:0:0:1 seen", "ipv6", "2001:db8::1"),
        ("resolves evil-cdn.example.co.uk daily", "domain", "evil-cdn.example.co.uk"),
        ("download https://evil.example.com/x.ps1?a=1, then", "url", "https://evil.example.com/x.ps1?a=1"),
        ("phish from bad.actor@evil.example.com.", "email", "bad.actor@evil.example.com"),
        ("md5 9d8e30daf21108092d5980c931876b7e", "md5", "9d8e30daf21108092d5980c931876b7e"),
        ("sha1 7C04EC2377E32B3C7742F581F6C5437464DD2CF2", "sha1", "7c04ec2377e32b3c7742f581f6c5437464dd2cf2"),
        (
            "sha256: 3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8",
            "sha256",
            "3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8",
        ),
        ("exploits CVE-2021-44228 (log4shell)", "cve", "CVE-2021-44228"),
        ("maps to T1059.001 and AML.T0051", "attack_technique", "T1059.001"),
        ("maps to T1059.001 and AML.T0051", "attack_technique", "AML.T0051"),
        ("iface 00:1A:2B:3C:4D:5E up", "mac", "00:1a:2b:3c:4d:5e"),
        ("announced by AS197540 in DE", "asn", "AS197540"),
        (
            "set HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run for persistence",
            "registry_key",
            "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
        ),
        ("dropped C:\\Program Files (x86)\\Acme\\evil.dll and ran it", "file_path", "C:\\Program Files (x86)\\Acme\\evil.dll"),
        ("reads /etc/shadow as root", "file_path", "/etc/shadow"),
    ];
    for (text, kind, value) in cases {
        assert!(has(text, kind, value), "{text:?} should yield {kind} {value}; got {:?}", found(text));
    }
}

#[test]
fn refangs_before_matching() {
    let cases = [
        ("hxxp://evil[.]example[.]com/a", "url", "http://evil.example.com/a"),
        ("hxxps[://]bad(.)example(.)org/p", "url", "https://bad.example.org/p"),
        ("http[:]//198.51.100[.]4/x", "url", "http://198.51.100.4/x"),
        ("evil[dot]example[dot]net", "domain", "evil.example.net"),
        ("198[.]51[.]100[.]9", "ipv4", "198.51.100.9"),
        ("victim[at]example[.]org", "email", "victim@example.org"),
        ("victim(at)example(dot)org", "email", "victim@example.org"),
        ("victim[@]example[.]org", "email", "victim@example.org"),
    ];
    for (text, kind, value) in cases {
        assert!(has(text, kind, value), "{text:?} should yield {kind} {value}; got {:?}", found(text));
    }
}

#[test]
fn rejects_near_misses() {
    let cases = [
        ("open report.pdf and setup.exe", "domain"),
        ("version 1.2.3.4.5 released", "ipv4"),
        ("address 999.1.1.1 invalid", "ipv4"),
        ("time 10:30:00 today", "ipv6"),
        // 33 hex digits: not an MD5, not part of anything else either.
        ("blob 9d8e30daf21108092d5980c931876b7ea end", "md5"),
        // A SHA-256 contains 32- and 40-digit substrings; neither is reported.
        ("3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8", "md5"),
        ("3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8", "sha1"),
        ("see T12345 and TA0001", "attack_technique"),
        ("and/or TCP/IP", "file_path"),
    ];
    for (text, kind) in cases {
        assert!(!found(text).iter().any(|(k, _)| k == kind), "{text:?} must not yield {kind}; got {:?}", found(text));
    }
}

#[test]
fn command_line_arguments_end_a_windows_path() {
    let text = "C:\\Windows\\System32\\cmd.exe /c C:\\temp\\x.bat";
    assert!(has(text, "file_path", "C:\\Windows\\System32\\cmd.exe"));
    assert!(has(text, "file_path", "C:\\temp\\x.bat"));
}

#[test]
fn quoted_windows_paths_keep_their_spaces_and_dashes() {
    let text = r#"powershell.exe -File "C:\Users\samuelf\OneDrive - (new) Corp\Desktop\run me.ps1" -x"#;
    assert!(has(text, "file_path", "C:\\Users\\samuelf\\OneDrive - (new) Corp\\Desktop\\run me.ps1"), "{:?}", found(text));
}

#[test]
fn url_paths_are_not_posix_paths_and_hosts_are_reported() {
    let iocs = found("get http://203.0.113.9/a/b/c.sh now");
    assert!(iocs.contains(&("url".into(), "http://203.0.113.9/a/b/c.sh".into())));
    assert!(iocs.contains(&("ipv4".into(), "203.0.113.9".into())));
    assert!(!iocs.iter().any(|(kind, _)| kind == "file_path"), "{iocs:?}");
}

#[test]
fn output_is_deduplicated_in_order_of_appearance() {
    let iocs = found("1.1.1.1 then 8.8.8.8 then 1.1.1.1 again");
    assert_eq!(iocs, vec![("ipv4".into(), "1.1.1.1".into()), ("ipv4".into(), "8.8.8.8".into())]);
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = extract_iocs(&text);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        for ioc in extract_iocs(&text) {
            // Whatever comes out is canonical: it parses to itself.
            let again = Ioc::parse(ioc.kind(), ioc.value());
            proptest::prop_assert_eq!(again.as_ref(), Ok(&ioc));
        }
    }

    #[test]
    fn refang_of_defang_is_identity_for_urls_emails_and_ips(
        label in "[a-z][a-z0-9]{1,10}",
        path in "(/[a-z0-9]{1,8}){0,3}",
        octets in proptest::array::uniform4(1u8..=254),
    ) {
        let ip = format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
        for live in [format!("https://{label}.example.com{path}"), format!("http://{ip}{path}"), format!("{label}@mail.example.org"), ip.clone()] {
            let defanged = crate::refang::defang(&live);
            proptest::prop_assert_eq!(crate::refang::refang(&defanged).into_owned(), live.clone());
            let kind = if live.contains("://") { "url" } else if live.contains('@') { "email" } else { "ipv4" };
            proptest::prop_assert!(has(&defanged, kind, &live), "{} from {}", live, defanged);
        }
    }

    #[test]
    fn refang_of_defang_is_identity_for_domains(label in "[a-z][a-z0-9]{1,10}", tld in proptest::sample::select(vec!["com", "org", "net", "co.uk", "io"])) {
        let domain = format!("{label}.example.{tld}");
        let defanged = crate::refang::defang(&domain);
        proptest::prop_assert_eq!(crate::refang::refang(&defanged).into_owned(), domain.clone());
        proptest::prop_assert!(has(&defanged, "domain", &domain));
    }
}
