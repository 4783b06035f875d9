use super::*;
use aluskort_core::TenantId;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn no_file_means_embedded_defaults_on_loopback() {
    let config = load(None, &HashMap::new()).expect("defaults are valid");
    assert_eq!(config.data_dir, PathBuf::from("./aluskort-data"));
    assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.case_store, CaseStoreConfig::Sqlite);
    assert_eq!(config.grouping_window_hours, 24);
}

#[test]
fn reports_every_problem_at_once() {
    let text = r#"
        version = 2
        listen_addr = "nowhere"
        [case_store]
        backend = "postgres"
        [pipeline]
        grouping_window_hours = 0
        max_attempts = 0
        [llm]
        provider = "magic"
    "#;
    let errors = load(Some(text), &HashMap::new()).expect_err("invalid").0;
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert!(errors.iter().any(|e| e.starts_with("`version`")));
    assert!(errors.iter().any(|e| e.starts_with("`listen_addr`")));
    assert!(errors.iter().any(|e| e.starts_with("`case_store.url` is required")));
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let errors = load(Some("data_dri = \"x\""), &HashMap::new()).expect_err("typo").0;
    assert!(errors[0].contains("data_dri"), "{errors:?}");
}

#[test]
fn interpolates_secrets_from_the_environment_and_never_prints_them() {
    let text = "[case_store]\nbackend = \"postgres\"\nurl = \"postgres://u:${PG_PASS}@db/aluskort\"\n";
    let config = load(Some(text), &env(&[("PG_PASS", "hunter2")])).expect("valid");
    let CaseStoreConfig::Postgres { url, .. } = &config.case_store else { panic!("postgres expected") };
    assert_eq!(url.expose(), "postgres://u:hunter2@db/aluskort");
    assert!(!format!("{config:?}").contains("hunter2"));
    let errors = load(Some(text), &HashMap::new()).expect_err("unset variable").0;
    assert_eq!(errors, vec!["`case_store.url`: environment variable PG_PASS is not set".to_owned()]);
}

#[test]
fn environment_overrides_the_file() {
    let config =
        load(Some("data_dir = \"/var/lib/a\""), &env(&[("ALUSKORT_DATA_DIR", "/tmp/b"), ("ALUSKORT_LISTEN_ADDR", "0.0.0.0:9000")]))
            .expect("valid");
    assert_eq!(config.data_dir, PathBuf::from("/tmp/b"));
    assert_eq!(config.listen_addr.to_string(), "0.0.0.0:9000");
}

#[test]
fn sources_are_validated_with_kind_specific_defaults() {
    let text = r#"
        [sources.sentinel-prod]
        kind = "sentinel"
        workspace_id = "ws-1"
        azure_tenant_id = "contoso.onmicrosoft.com"
        client_id = "app-1"
        client_secret = "${SENTINEL_SECRET}"
        tenant = "contoso"

        [sources.elastic]
        kind = "elastic"
        url = "https://es.internal:9200/"
        api_key = "${ES_KEY}"

        [sources.splunk]
        kind = "splunk"
        url = "http://127.0.0.1:8089"
        token = "${SPLUNK_TOKEN}"
        enabled = false
    "#;
    let env = env(&[("SENTINEL_SECRET", "s3cret"), ("ES_KEY", "a2V5"), ("SPLUNK_TOKEN", "tok")]);
    let config = load(Some(text), &env).expect("valid");
    let sentinel = config.source("sentinel-prod").expect("configured");
    assert_eq!(sentinel.poll_interval.as_secs(), 30, "FR-ING-003: Sentinel polled every 30 s");
    assert_eq!(sentinel.max_retries, 3);
    assert_eq!(sentinel.retry_base.as_millis(), 1000);
    assert_eq!(sentinel.tenant.as_ref().map(TenantId::as_str), Some("contoso"));
    let SourceKind::Sentinel(details) = &sentinel.kind else { panic!("sentinel kind") };
    assert_eq!(details.token_url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(details.client_secret.expose(), "s3cret");
    assert!(!format!("{sentinel:?}").contains("s3cret"), "secrets never show in Debug output");
    let SourceKind::Elastic(elastic) = &config.source("elastic").expect("configured").kind else { panic!("elastic kind") };
    assert_eq!(elastic.url, "https://es.internal:9200");
    assert_eq!(elastic.index, ".alerts-security.alerts-*");
    let splunk = config.source("splunk").expect("configured");
    assert_eq!(splunk.poll_interval.as_secs(), 60, "FR-ING-003: Splunk polled every 60 s");
    assert!(!splunk.enabled);
}

#[test]
fn bad_sources_name_each_field() {
    let text = r#"
        [sources.a]
        kind = "sentinel"
        workspace_id = "ws"
        client_secret = "x"
        api_url = "http://la.example.com"
        page_size = 0

        [sources.b]
        kind = "qradar"

        [sources.c]
        kind = "splunk"
        url = "https://splunk:8089"
        token = "t"
        search = "| inputlookup x"
    "#;
    let errors = load(Some(text), &HashMap::new()).expect_err("invalid").0;
    let expected = [
        "`sources.a.client_id` is required",
        "`sources.a.azure_tenant_id` or `sources.a.token_url` is required",
        "`sources.a.api_url`: \"http://la.example.com\" is plain http",
        "`sources.a.page_size`: 0 must be 1..=10000",
        "`sources.b.kind`: unknown kind \"qradar\"",
        "`sources.c.search`: must start with \"search \"",
    ];
    for needle in expected {
        assert!(errors.iter().any(|error| error.starts_with(needle)), "missing {needle:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn knowledge_defaults_need_nothing_and_providers_are_validated() {
    let config = load(None, &HashMap::new()).expect("defaults");
    assert_eq!(config.knowledge, KnowledgeConfig::default());
    let text = r#"
        [knowledge]
        embedder = "openai_compatible"
        embedding_url = "http://127.0.0.1:11434"
        embedding_model = "nomic-embed-text"
        embedding_dimensions = 768
        embedding_api_key = "${EMBED_KEY}"
        vector_index = "qdrant"
        qdrant_url = "http://127.0.0.1:6333"
    "#;
    let config = load(Some(text), &env(&[("EMBED_KEY", "k")])).expect("valid");
    assert!(matches!(config.knowledge.embedder, EmbedderConfig::OpenAiCompatible { dimensions: 768, .. }));
    assert!(
        matches!(config.knowledge.vector_index, VectorIndexConfig::Qdrant { ref collection_prefix, .. } if collection_prefix == "aluskort")
    );
    let errors =
        load(Some("[knowledge]\nembedder = \"openai_compatible\"\nvector_index = \"faiss\"\n"), &HashMap::new()).expect_err("invalid").0;
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn kill_switches_are_validated_and_kept() {
    let text = "[pipeline.kill_switches]\ntenants = [\"acme\"]\nsources = [\"splunk\", \"qradar\"]\ntechniques = [\"T1078\", \"AML.T0051\", \"T10\"]\n";
    let errors = load(Some(text), &HashMap::new()).expect_err("two bad entries").0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("unknown source \"qradar\""), "{errors:?}");
    assert!(errors[1].contains("\"T10\" is not a technique id"), "{errors:?}");
    let good = "[pipeline.kill_switches]\ntenants = [\"acme\"]\ntechniques = [\"T1078.004\"]\n";
    let config = load(Some(good), &HashMap::new()).expect("valid");
    assert_eq!(config.kill_switches.tenants, ["acme"]);
    assert_eq!(config.kill_switches.techniques, ["T1078.004"]);
    assert!(load(None, &HashMap::new()).expect("defaults").kill_switches.techniques.is_empty(), "none by default");
}

#[test]
fn enricher_timeout_defaults_to_500_ms_and_is_bounded() {
    let config = load(None, &HashMap::new()).expect("defaults");
    assert_eq!(config.enricher_timeout, std::time::Duration::from_millis(500));
    for (ms, expected) in [(1_u64, Some(1_u64)), (60_000, Some(60_000)), (2_500, Some(2_500)), (0, None), (60_001, None)] {
        let text = format!("[pipeline]\nenricher_timeout_ms = {ms}\n");
        match (load(Some(&text), &HashMap::new()), expected) {
            (Ok(config), Some(expected)) => assert_eq!(config.enricher_timeout, std::time::Duration::from_millis(expected)),
            (Err(errors), None) => assert_eq!(
                errors.0,
                vec![format!("`pipeline.enricher_timeout_ms`: {ms} must be 1..=60000 (milliseconds)")],
                "one error naming the field"
            ),
            (other, expected) => panic!("{ms} ms: {other:?}, expected {expected:?}"),
        }
    }
    let errors = load(Some("[pipeline]\nenricher_timeout_ms = -5\n"), &HashMap::new()).expect_err("negative").0;
    assert!(errors[0].contains("enricher_timeout_ms"), "{errors:?}");
}

#[test]
fn zones_are_parsed_in_order_and_zone_of_matches_host_then_ip() {
    let text = r#"
        [[pipeline.zones]]
        name = "Zone1_Critical"
        consequence = "critical"
        hosts = ["DC01", "*.Corp.Example", "scada-*"]
        cidrs = ["10.10.0.0/16", "192.168.5.7", "fd00:aa::/32"]

        [[pipeline.zones]]
        name = "Zone3_Enterprise"
        consequence = "Medium"
        hosts = ["ws-*"]
        cidrs = ["10.0.0.0/8", "2001:db8::1"]
    "#;
    let config = load(Some(text), &HashMap::new()).expect("valid");
    assert!(load(None, &HashMap::new()).expect("defaults").zones.is_empty(), "no zones by default");
    let names: Vec<_> = config.zones.iter().map(|zone| zone.name.as_str()).collect();
    assert_eq!(names, ["Zone1_Critical", "Zone3_Enterprise"], "kept in order");
    let (critical, enterprise) = (&config.zones[0], &config.zones[1]);
    assert_eq!(critical.consequence, Consequence::Critical);
    assert_eq!(enterprise.consequence, Consequence::Medium);
    assert_eq!(critical.hosts, ["dc01", "*.corp.example", "scada-*"], "lower-cased");
    let cidrs: Vec<_> = critical.cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["10.10.0.0/16", "192.168.5.7/32", "fd00:aa::/32"], "a bare address is one host");
    assert_eq!(enterprise.cidrs[1].to_string(), "2001:db8::1/128");

    let ip = |text: &str| text.parse::<std::net::IpAddr>().expect("ip");
    let zone = |host: Option<&str>, ips: &[std::net::IpAddr]| zone_of(&config.zones, host, ips).map(|zone| zone.name.as_str());
    // By host: exact, suffix and prefix patterns, any case; the host wins over the addresses.
    assert_eq!(zone(Some("dc01"), &[]), Some("Zone1_Critical"));
    assert_eq!(zone(Some("FS1.corp.EXAMPLE"), &[ip("10.200.0.1")]), Some("Zone1_Critical"));
    assert_eq!(zone(Some("SCADA-HMI-3"), &[]), Some("Zone1_Critical"));
    assert_eq!(zone(Some("ws-0042"), &[ip("10.10.1.1")]), Some("Zone3_Enterprise"));
    assert_eq!(zone(Some("dc01.other.example"), &[]), None, "an exact pattern is not a prefix");
    assert_eq!(zone(Some("corp.example"), &[]), None, "`*.corp.example` needs a label before the suffix");
    // By address when no host pattern matches: the first zone in order wins (10.10/16 before 10/8).
    assert_eq!(zone(Some("unknown-host"), &[ip("10.10.3.4")]), Some("Zone1_Critical"));
    assert_eq!(zone(None, &[ip("10.20.3.4")]), Some("Zone3_Enterprise"));
    assert_eq!(zone(None, &[ip("172.16.0.1"), ip("192.168.5.7")]), Some("Zone1_Critical"), "any of the addresses");
    assert_eq!(zone(None, &[ip("192.168.5.8")]), None, "/32 is one host");
    assert_eq!(zone(None, &[ip("FD00:AA:1::5")]), Some("Zone1_Critical"), "IPv6 CIDR");
    assert_eq!(zone(None, &[ip("2001:db8::1")]), Some("Zone3_Enterprise"));
    assert_eq!(zone(None, &[ip("2001:db8::2")]), None, "/128 is one host");
    assert_eq!(zone(None, &[]), None);
}

#[test]
fn bad_zones_report_every_problem_with_its_field() {
    let text = r#"
        [[pipeline.zones]]
        name = "Zone1_Critical"
        consequence = "severe"
        hosts = ["dc01", "a*b", "", "**x"]
        cidrs = ["10.0.0.0/33", "10.1.0.0/16", "not-an-ip"]

        [[pipeline.zones]]
        name = "Zone1_Critical"
        consequence = "high"
        hosts = ["x*"]

        [[pipeline.zones]]
        name = "Zone_Empty"
        consequence = "low"

        [[pipeline.zones]]
        name = " Zone_Padded"
        cidrs = ["10.2.0.0/16"]
    "#;
    let errors = load(Some(text), &HashMap::new()).expect_err("invalid").0;
    let expected = [
        "`pipeline.zones[0].consequence`: unknown consequence \"severe\"",
        "`pipeline.zones[0].hosts[1]`: \"a*b\" has a `*` in the middle",
        "`pipeline.zones[0].hosts[2]`: \"\" is empty",
        "`pipeline.zones[0].hosts[3]`: \"**x\" has more than one `*`",
        "`pipeline.zones[0].cidrs[0]`: \"10.0.0.0/33\" is not a CIDR",
        "`pipeline.zones[0].cidrs[2]`: \"not-an-ip\" is not a CIDR",
        "`pipeline.zones[1].name`: \"Zone1_Critical\" is already the name of `pipeline.zones[0]`",
        "`pipeline.zones[2]` has neither `hosts` nor `cidrs`",
        "`pipeline.zones[3].name`: \" Zone_Padded\" has leading or trailing whitespace",
        "`pipeline.zones[3].consequence` is required",
    ];
    for needle in expected {
        assert!(errors.iter().any(|error| error.starts_with(needle)), "missing {needle:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    let errors = load(Some("[[pipeline.zones]]\nname = \"z\"\nconsequence = \"low\"\nhosts = [\"h\"]\nasset = \"x\"\n"), &HashMap::new())
        .expect_err("unknown field")
        .0;
    assert!(errors[0].contains("asset"), "{errors:?}");
}

#[test]
fn kill_switches_take_fp_patterns_and_join_without_repeats() {
    let text = "[pipeline.kill_switches]\npatterns = [\"fp-1\", \"\"]\n";
    let errors = load(Some(text), &HashMap::new()).expect_err("an empty pattern id").0;
    assert_eq!(errors, ["`pipeline.kill_switches.patterns`: \"\" is empty"]);
    let config = load(Some("[pipeline.kill_switches]\npatterns = [\"fp-1\"]\ntenants = [\"acme\"]\n"), &HashMap::new()).expect("valid");
    assert_eq!(config.kill_switches.blocks_pattern("fp-1").as_deref(), Some("kill switch on FP pattern fp-1"));
    assert_eq!(config.kill_switches.blocks_pattern("fp-2"), None);
    let mut runtime = crate::KillSwitches::default();
    runtime.insert(crate::KillDimension::Tenant, "acme".to_owned());
    runtime.insert(crate::KillDimension::Technique, "T1078".to_owned());
    let joined = config.kill_switches.union(&runtime);
    assert_eq!(joined.tenants, ["acme"], "a switch in both sets is listed once");
    assert_eq!(joined.techniques, ["T1078"]);
    assert_eq!(joined.patterns, ["fp-1"]);
    let shared = crate::SharedKillSwitches::new(config.kill_switches.clone());
    let seen_by_another_holder = shared.clone();
    shared.replace(joined.clone());
    assert_eq!(*seen_by_another_holder.snapshot(), joined, "clones share one state");
}

#[test]
fn redis_section_is_optional_validated_and_keeps_its_url_secret() {
    assert_eq!(load(None, &HashMap::new()).expect("defaults").redis, None, "no Redis by default");
    let env = HashMap::from([("REDIS_PASSWORD".to_owned(), "hunter2".to_owned())]);
    let text = "[redis]\nurl = \"redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0\"\nkey_prefix = \"prod:\"\n";
    let redis = load(Some(text), &env).expect("valid").redis.expect("configured");
    assert_eq!(redis.url.expose(), "redis://:hunter2@127.0.0.1:6379/0");
    assert!(!format!("{redis:?}").contains("hunter2"), "the URL never reaches a log: {redis:?}");
    assert_eq!((redis.key_prefix.as_str(), redis.timeout.as_millis(), redis.negative_ttl_secs), ("prod:", 5_000, 3_600));
    assert_eq!(redis.kill_switch_refresh.as_secs(), 10);
    let bad = "[redis]\nurl = \"http://127.0.0.1:6379\"\nkill_switch_refresh_secs = 120\ntimeout_ms = 0\n";
    let errors = load(Some(bad), &HashMap::new()).expect_err("three problems").0;
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("`redis.url`: must start with redis://"), "{errors:?}");
    let stray = load(Some("[redis]\nkey_prefix = \"x\"\n"), &HashMap::new()).expect_err("no url").0;
    assert_eq!(stray, ["`redis`: settings given without `redis.url`"]);
}

#[test]
fn bus_is_in_process_by_default_and_kafka_is_validated() {
    assert_eq!(load(None, &HashMap::new()).expect("defaults").bus, crate::BusConfig::Memory);
    let kafka = load(Some("[bus]\nbackend = \"kafka\"\nbrokers = \"k1:9092,k2:9092\"\ntopic_prefix = \"prod.\"\n"), &HashMap::new())
        .expect("valid");
    assert_eq!(
        kafka.bus,
        crate::BusConfig::Kafka {
            brokers: "k1:9092,k2:9092".into(),
            topic_prefix: "prod.".into(),
            client_id: "aluskort".into(),
            replication: 1
        }
    );
    let errors = load(Some("[bus]\nbackend = \"kafka\"\nbrokers = \"k1\"\ntopic_prefix = \"a b\"\nreplication = 0\n"), &HashMap::new())
        .expect_err("three problems")
        .0;
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("`bus.brokers`"), "{errors:?}");
    let stray = load(Some("[bus]\nbrokers = \"k1:9092\"\n"), &HashMap::new()).expect_err("memory with brokers").0;
    assert_eq!(stray, ["`bus`: kafka settings given but `bus.backend` is not \"kafka\""]);
    let unknown = load(Some("[bus]\nbackend = \"nats\"\n"), &HashMap::new()).expect_err("unknown").0;
    assert!(unknown[0].contains("unknown backend \"nats\""), "{unknown:?}");
}

/// The configuration the deployment artefacts ship (deploy/aluskort.toml, also the Kubernetes
/// ConfigMap) is valid with its three secrets set, names the production backends, and the
/// ConfigMap holds it unchanged.
#[test]
fn the_deployment_configuration_is_valid_and_the_configmap_matches_it() {
    let text = include_str!("../../../deploy/aluskort.toml");
    let env = HashMap::from([
        ("ALUSKORT_PG_URL".to_owned(), "postgres://aluskort:pw@postgres:5432/aluskort".to_owned()),
        ("ALUSKORT_KAFKA_BROKERS".to_owned(), "kafka:9092".to_owned()),
        ("ALUSKORT_REDIS_URL".to_owned(), "redis://redis:6379/0".to_owned()),
        ("ALUSKORT_ADMIN_API_KEY".to_owned(), "a".repeat(64)),
    ]);
    let config = load(Some(text), &env).expect("valid");
    assert!(matches!(config.case_store, CaseStoreConfig::Postgres { .. }));
    assert!(matches!(config.bus, crate::BusConfig::Kafka { ref brokers, .. } if brokers == "kafka:9092"));
    assert!(config.redis.is_some());
    let missing = load(Some(text), &HashMap::new()).expect_err("secrets unset").0;
    assert_eq!(config.auth.keys.iter().map(|key| (key.name.as_str(), key.role)).collect::<Vec<_>>(), [("admin", crate::Role::Admin)]);
    for variable in ["ALUSKORT_PG_URL", "ALUSKORT_KAFKA_BROKERS", "ALUSKORT_REDIS_URL", "ALUSKORT_ADMIN_API_KEY"] {
        assert!(missing.iter().any(|error| error.contains(&format!("environment variable {variable} is not set"))), "{missing:#?}");
    }
    let manifests = include_str!("../../../deploy/k8s/aluskort.yaml");
    for line in text.lines().filter(|line| !line.is_empty()) {
        assert!(manifests.contains(&format!("\n    {line}\n")), "ConfigMap lacks {line:?}");
    }
}
