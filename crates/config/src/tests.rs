use super::*;

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
