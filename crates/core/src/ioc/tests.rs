use super::*;

#[test]
fn ipv4_accepts_dotted_quads_and_rejects_near_misses() {
    assert_eq!(Ipv4::parse("72.5.72.208").map(String::from), Ok("72.5.72.208".to_owned()));
    for bad in ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.a", ""] {
        assert!(Ipv4::parse(bad).is_err(), "{bad} must be rejected");
    }
}

#[test]
fn ipv6_is_canonicalised_to_rfc5952() {
    let cases = [
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[2001:db8::2]", "2001:db8::2"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ];
    for (raw, canonical) in cases {
        assert_eq!(Ipv6::parse(raw).map(String::from), Ok(canonical.to_owned()), "{raw}");
    }
    assert!(Ipv6::parse("deadbeef").is_err(), "FR-ENR-003 (I): an IPv6 address must contain ':'");
    assert!(Ipv6::parse("1:2:3:4:5:6:7:8:9").is_err());
}

#[test]
fn domain_follows_fr_enr_003_syntax() {
    assert_eq!(Domain::parse("Evil.Example.COM.").map(String::from), Ok("evil.example.com".to_owned()));
    assert!(Domain::parse("xn--80ak6aa92e.xn--p1ai").is_ok());
    for bad in ["localhost", "-bad.com", "bad-.com", "a..b.com", "exa mple.com", "1.2.3.4", "foo.c"] {
        assert!(Domain::parse(bad).is_err(), "{bad} must be rejected");
    }
}

#[test]
fn url_requires_scheme_and_host_and_lowercases_them() {
    assert_eq!(
        Url::parse("HTTPS://Evil.Example.com:8443/Path?Q=1").map(String::from),
        Ok("https://evil.example.com:8443/Path?Q=1".to_owned())
    );
    assert!(Url::parse("http://[2001:db8::1]/x").is_ok());
    assert!(Url::parse("http://intranet/share").is_ok());
    for bad in ["evil.example.com/path", "javascript://x", "http://", "http://a b.com/", "http://host:99999/"] {
        assert!(Url::parse(bad).is_err(), "{bad} must be rejected");
    }
}

#[test]
fn hashes_are_exact_length_lowercase_hex() {
    let sha256 = "3247BCFD60F6DD25F34CB74B5889AB10EF1B3EC72B4D4B3D95B5B25B534560B8";
    assert_eq!(Sha256::parse(sha256).map(String::from), Ok(sha256.to_ascii_lowercase()));
    assert!(Sha256::parse(&sha256[1..]).is_err());
    assert!(Md5::parse("9d8e30daf21108092d5980c931876b7g").is_err());
    assert!(Sha1::parse("7c04ec2377e32b3c7742f581f6c5437464dd2cf2").is_ok());
    assert!(Sha512::parse(&"a".repeat(128)).is_ok());
    assert!(Sha512::parse(&"a".repeat(127)).is_err());
}

#[test]
fn technique_ids_cover_attack_and_atlas() {
    for (raw, canonical) in [("t1059.001", "T1059.001"), ("T1055", "T1055"), ("aml.t0051", "AML.T0051"), ("AML.T0044.001", "AML.T0044.001")]
    {
        assert_eq!(TechniqueId::parse(raw).map(String::from), Ok(canonical.to_owned()));
    }
    for bad in ["T105", "T10590", "T1059.01", "AML.0051", "TA0001"] {
        assert!(TechniqueId::parse(bad).is_err(), "{bad} must be rejected");
    }
    let sub = TechniqueId::parse("AML.T0044.001").expect("valid");
    assert!(sub.is_atlas());
    assert_eq!(sub.parent(), "AML.T0044");
    assert_eq!(TechniqueId::parse("T1059.001").expect("valid").parent(), "T1059");
}

#[test]
fn cve_mac_asn_registry_and_paths() {
    assert_eq!(Cve::parse("cve-2021-44228").map(String::from), Ok("CVE-2021-44228".to_owned()));
    assert!(Cve::parse("CVE-21-44228").is_err());
    assert_eq!(Mac::parse("00-1A-2B-3C-4D-5E").map(String::from), Ok("00:1a:2b:3c:4d:5e".to_owned()));
    assert!(Mac::parse("00:1A:2B:3C:4D").is_err());
    assert_eq!(Asn::parse("as197540").map(String::from), Ok("AS197540".to_owned()));
    assert!(Asn::parse("AS0").is_err());
    assert_eq!(
        RegistryKey::parse("hklm\\Software\\Microsoft\\Windows\\CurrentVersion\\Run").map(String::from),
        Ok("HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run".to_owned())
    );
    assert!(RegistryKey::parse("HKXX\\Software").is_err());
    assert_eq!(FilePath::parse("c:\\Windows\\System32\\cmd.exe").map(String::from), Ok("C:\\Windows\\System32\\cmd.exe".to_owned()));
    assert!(FilePath::parse("/etc/passwd").is_ok());
    assert!(FilePath::parse("\\\\fileserver\\share\\x.doc").is_ok());
    assert!(FilePath::parse("relative\\path.txt").is_err());
}

#[test]
fn ioc_serialises_as_type_and_value_and_validates_on_the_way_in() {
    let ioc = Ioc::parse(IocType::Sha1, "7C04EC2377E32B3C7742F581F6C5437464DD2CF2").expect("valid");
    let json = serde_json::to_string(&ioc).expect("serialises");
    assert_eq!(json, r#"{"type":"sha1","value":"7c04ec2377e32b3c7742f581f6c5437464dd2cf2"}"#);
    assert_eq!(serde_json::from_str::<Ioc>(&json).ok(), Some(ioc));
    assert!(serde_json::from_str::<Ioc>(r#"{"type":"ipv4","value":"999.1.1.1"}"#).is_err());
}

proptest::proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
        for kind in IocType::ALL {
            let _ = Ioc::parse(kind, &text);
        }
    }

    #[test]
    fn every_valid_ipv4_round_trips(a in 0u8.., b in 0u8.., c in 0u8.., d in 0u8..) {
        let text = format!("{a}.{b}.{c}.{d}");
        proptest::prop_assert_eq!(Ipv4::parse(&text).map(String::from), Ok(text));
    }

    #[test]
    fn canonical_values_are_fixed_points(text in "[a-zA-Z0-9.:/\\\\-]{1,40}") {
        for kind in IocType::ALL {
            if let Ok(ioc) = Ioc::parse(kind, &text) {
                let again = Ioc::parse(kind, ioc.value());
                proptest::prop_assert_eq!(again.as_ref(), Ok(&ioc));
            }
        }
    }
}
