use aluskort_testkit::fake::neo4j::{DATABASE, FakeNeo4j, PASSWORD, USER};

use super::*;

fn placement(tenant: &str, asset: &str, zone: &str, consequence: &str) -> Placement {
    Placement::new(tenant, asset, zone, consequence).expect("valid")
}

/// The contract both graphs keep: placements are found by tenant and lower-cased name, an asset
/// lives in one zone (placing it again moves it), a tenant's zone has the consequence placed last
/// (another tenant's zone of the same name is its own).
async fn graph_contract(graph: &dyn AssetGraph) {
    let placed = graph
        .place(&[
            placement("acme", "DC01.corp.local", "Zone1_Control", "critical"),
            placement("acme", "ws-17", "Zone3_Enterprise", "medium"),
            placement("acme", "10.0.8.4", "Zone3_Enterprise", "medium"),
            placement("umbrella", "dc01.corp.local", "Zone3_Enterprise", "low"),
        ])
        .await
        .expect("place");
    assert_eq!(placed, 4);
    let names = vec!["dc01.corp.local".to_owned(), "WS-17".to_owned(), "unknown-host".to_owned(), "10.0.8.4".to_owned()];
    let found = graph.placements("acme", &names).await.expect("lookup");
    assert_eq!(
        found,
        vec![
            placement("acme", "10.0.8.4", "Zone3_Enterprise", "medium"),
            placement("acme", "dc01.corp.local", "Zone1_Control", "critical"),
            placement("acme", "ws-17", "Zone3_Enterprise", "medium"),
        ],
        "by tenant, any case, unknown names absent, sorted"
    );
    assert_eq!(found[1].consequence(), Some(Consequence::Critical));
    // Moving an asset: it resides in the new zone only.
    graph.place(&[placement("acme", "ws-17", "Zone2_Operations", "high")]).await.expect("move");
    let moved = graph.placements("acme", &["ws-17".to_owned()]).await.expect("lookup");
    assert_eq!(moved, vec![placement("acme", "ws-17", "Zone2_Operations", "high")]);
    // Re-rating a zone re-rates every asset in it.
    graph.place(&[placement("acme", "ws-18", "Zone3_Enterprise", "high")]).await.expect("re-rate");
    let rerated = graph.placements("acme", &["10.0.8.4".to_owned()]).await.expect("lookup");
    assert_eq!(rerated, vec![placement("acme", "10.0.8.4", "Zone3_Enterprise", "high")]);
    let other = graph.placements("umbrella", &["dc01.corp.local".to_owned()]).await.expect("lookup");
    assert_eq!(other, vec![placement("umbrella", "dc01.corp.local", "Zone3_Enterprise", "low")]);
    assert!(graph.placements("acme", &[]).await.expect("nothing asked").is_empty());
    assert!(graph.placements("nobody", &names).await.expect("other tenant").is_empty());
}

#[tokio::test]
async fn the_memory_graph_keeps_the_contract_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    graph_contract(&MemoryGraph::open(dir.path()).await.expect("open")).await;
    let reopened = MemoryGraph::open(dir.path()).await.expect("reopen");
    assert_eq!(
        reopened.placements("acme", &["ws-17".to_owned(), "dc01.corp.local".to_owned()]).await.expect("lookup"),
        vec![placement("acme", "dc01.corp.local", "Zone1_Control", "critical"), placement("acme", "ws-17", "Zone2_Operations", "high")],
        "the log replays to the latest placement"
    );
    assert_eq!(reopened.skipped_lines, 0);
}

/// Against the Neo4j Query API stand-in (crates/testkit/src/fake/neo4j.rs: the real HTTP/JSON
/// protocol and Basic auth, a graph of its own, and only the asset graph's two Cypher statements;
/// not a Neo4j server, which no registry here provides).
#[tokio::test]
async fn the_neo4j_graph_keeps_the_contract_over_the_query_api() {
    let fake = FakeNeo4j::start().await;
    let graph = Neo4jGraph::new(&fake.url(), DATABASE, USER, PASSWORD, std::time::Duration::from_secs(5)).expect("client");
    graph_contract(&graph).await;
    assert_eq!(fake.zone_of("acme", "ws-17").as_deref(), Some("Zone2_Operations"));
    // Values travel as parameters, never inside the Cypher text.
    let statements = fake.statements();
    assert!(!statements.is_empty());
    assert!(statements.iter().all(|statement| !statement.contains("ws-17") && !statement.contains("acme")), "{statements:?}");

    let wrong = Neo4jGraph::new(&fake.url(), DATABASE, USER, "guess", std::time::Duration::from_secs(5)).expect("client");
    let error = wrong.placements("acme", &["ws-17".to_owned()]).await.expect_err("refused");
    assert!(error.to_string().contains("Neo.ClientError.Security.Unauthorized"), "{error}");
    assert!(!error.to_string().contains("guess"), "the password is never in an error");
    let missing = Neo4jGraph::new(&fake.url(), "other", USER, PASSWORD, std::time::Duration::from_secs(5)).expect("client");
    assert!(missing.placements("acme", &["x".to_owned()]).await.expect_err("no db").to_string().contains("DatabaseNotFound"));
}

#[test]
fn placements_are_validated_with_the_field_and_reason() {
    assert_eq!(placement("acme", " WS-1 ", "Zone", "HIGH").asset, "ws-1");
    let error = Placement::new("acme", "ws 1", "Zone", "high").expect_err("space");
    assert!(error.to_string().contains("no spaces"), "{error}");
    let error = Placement::new("acme", "ws-1", "Zone", "severe").expect_err("consequence");
    assert!(error.to_string().contains("\"severe\" is not one of low, medium, high, critical"), "{error}");
    assert!(Placement::new("", "ws-1", "Zone", "low").is_err());
}
